from . import test_install
from . import test_bcc
from . import test_policy
from . import test_privacy
from . import test_register
from . import test_bounce
from . import test_bounce_fuzz
from . import test_register_counts
