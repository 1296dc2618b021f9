from . import test_document_untracked
