"""Optional dependencies (setup.cfg extras): one line that says what to install.

The default install serves the tracker and the commands around it; an extra
adds what one feature needs (`engine`: SQLAlchemy and the engine database
drivers for `db-upgrade --target engine`; `keystone`: keystoneauth1). A
command that needs a missing one fails with a ConfigError naming the extra,
never with a ModuleNotFoundError traceback.
"""

import importlib

from st2bridge import errors

PURPOSE = {
    "engine": "db-upgrade of the engine's database (--target engine or all)",
    "keystone": "[engine] auth_type = keystone",
}


def require(module, extra):
    """Import `module`, or say which extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or module
        raise errors.ConfigError(
            "%s needs %s, which is not installed: pip install 'st2bridge[%s]' into the "
            "bridge's virtualenv (packaging/install.sh installs it by default)"
            % (PURPOSE.get(extra, "this"), missing, extra)
        ) from None


class LazyModule:
    """A module imported on first use, through require()."""

    def __init__(self, module, extra):
        self._module_name, self._extra, self._module = module, extra, None

    def __getattr__(self, name):
        if self._module is None:
            self._module = require(self._module_name, self._extra)
        return getattr(self._module, name)
