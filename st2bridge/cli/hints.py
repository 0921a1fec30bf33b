"""Commands the CLI suggests, written as the user called it: with the
--config-file and --config-dir they gave, so the suggestion acts on the same
bridge (a copied `st2bridge task rerun ID` would otherwise read the default
configuration and find nothing)."""

import shlex


def prog(args):
    parts = ["st2bridge"]
    for path in getattr(args, "config_file", None) or []:
        parts += ["--config-file", path]
    if getattr(args, "config_dir", None):
        parts += ["--config-dir", args.config_dir]
    return " ".join(shlex.quote(part) for part in parts)


def repeat_config(text, args):
    """`text` with each command it suggests (`st2bridge …` in backquotes) as
    the user called st2bridge."""
    return text.replace("`st2bridge ", "`%s " % prog(args))
