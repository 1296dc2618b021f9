from . import test_composer_cc_bcc
