"""Run Odoo's own ``odoo-mailgate.py`` under Python 3.

Odoo 18 still ships the script for Python 2 (``import xmlrpclib``, the
message read from ``sys.stdin`` as bytes), and Debian 12 has no Python 2.
This runs the script unchanged, with those two Python 2 behaviours given
back: ``python3 mailgate.py /path/to/odoo-mailgate.py -d DB -u UID ...``.
"""

import runpy
import sys
import xmlrpc.client


class _BytesStdin:
    """``sys.stdin`` as Python 2 had it: ``read()`` returns bytes."""

    def read(self):
        return sys.__stdin__.buffer.read()


if __name__ == "__main__":
    script = sys.argv.pop(1)
    sys.modules["xmlrpclib"] = xmlrpc.client
    sys.stdin = _BytesStdin()
    runpy.run_path(script, run_name="__main__")
