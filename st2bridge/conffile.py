"""Reading the bridge's config files (oslo.config's INI syntax) for oslo.config.

oslo.config reads files itself, but an operator's mistakes then end in a
traceback (invalid UTF-8, a directory given as a file), a line before any
section stops every command, and every `$` starts a template, so a password
like `Sup3r$ecret` crashes each command with a message quoting part of it.
The bridge reads the files here instead, with oslo's own line parser (the
same syntax), and hands the parsed sections to oslo (st2bridge.config):

- invalid UTF-8, a directory, an unreadable file: one-line ConfigError;
- a line before any section, unknown sections and options: warnings that
  name the file and line (the value is ignored, nothing else changes);
- values are literal: `$` is escaped for oslo unless [DEFAULT] interpolation
  is true (then oslo's rules hold: `$name` is another option, `$$` a `$`);
- a world-readable file that sets a secret option: a warning.

Nothing here ever quotes a value: it may be a secret.
"""

import dataclasses
import glob
import os
import re

from oslo_config import iniparser

from st2bridge import errors

# oslo.config's own command-line options, valid in [DEFAULT] too.
OSLO_OPTIONS = {"config_file", "config_dir", "config_source"}
_TRUE = {"1", "t", "true", "on", "y", "yes"}
_REFERENCE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
_URL_PASSWORD = re.compile(r"://[^:/@\s]*:[^@\s/]+@")


@dataclasses.dataclass
class ParsedFile:
    path: str
    sections: dict  # {section: {key: [raw values]}}, as oslo's parser builds it
    lines: dict  # {(section, key): line of the last assignment}


class _Parser(iniparser.BaseParser):
    def __init__(self, path, warnings):
        super().__init__()
        self.path = path
        self.warnings = warnings
        self.section = None
        self.sections = {}
        self.lines = {}
        self._key_line = 0

    def _split_key_value(self, line):
        self._key_line = self.lineno  # a value may continue on later lines
        return super()._split_key_value(line)

    def new_section(self, section):
        self.section = section
        self.sections.setdefault(section, {})

    def assignment(self, key, value):
        if self.section is None:
            self.warnings.append(
                "%s:%d: an option before any [section] is ignored" % (self.path, self._key_line)
            )
            return
        self.sections[self.section].setdefault(key, []).append("\n".join(value))
        self.lines[(self.section, key)] = self._key_line


def resolve(config_files, config_dir, default_files, default_dirs):
    """The files to read, in order (later ones win): the --config-file ones,
    else the default files that exist; then *.conf of --config-dir (which
    must exist), else of the default directories that exist."""
    files = list(config_files) if config_files else [f for f in default_files if _exists(f)]
    if config_dir:
        if not os.path.isdir(config_dir):
            raise errors.ConfigError("config directory not found: %s" % config_dir)
        files += sorted(glob.glob(os.path.join(config_dir, "*.conf")))
    else:
        for directory in default_dirs:
            if os.path.isdir(directory):
                files += sorted(glob.glob(os.path.join(directory, "*.conf")))
    return files


def _exists(path):
    return os.path.lexists(path)


def read(path, warnings):
    """One file, parsed; ConfigError (one line) when it cannot be."""
    if os.path.isdir(path):
        raise errors.ConfigError(
            "config file %s is a directory: give a file, or the directory with --config-dir" % path
        )
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise errors.ConfigError(
            "config file not found or unreadable: %s (%s)" % (path, exc.strerror or exc)
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise errors.ConfigError(
            "config file %s is not valid UTF-8 (line %d): save it as UTF-8" % (path, line)
        ) from None
    parser = _Parser(path, warnings)
    try:
        parser.parse(text.lstrip("\ufeff").splitlines())
    except iniparser.ParseError as exc:
        raise errors.ConfigError(
            "cannot parse config file %s: line %d: %s" % (path, exc.lineno, exc.msg)
        ) from None
    return ParsedFile(path, parser.sections, parser.lines)


def interpolation_wanted(parsed_files):
    """[DEFAULT] interpolation as the files set it (the last one wins)."""
    wanted = False
    for parsed in parsed_files:
        values = parsed.sections.get("DEFAULT", {}).get("interpolation")
        if values:
            wanted = values[-1].strip().lower() in _TRUE
    return wanted


def for_oslo(parsed, interpolate):
    """(sections, normalized) as oslo's namespace stores a parsed file, with
    every `$` escaped unless values are to be interpolated."""
    sections, normalized = {}, {}
    for section, options in parsed.sections.items():
        values = {
            key: [v if interpolate else v.replace("$", "$$") for v in vals]
            for key, vals in options.items()
        }
        sections[section] = values
        group = section if section == "DEFAULT" else section.lower()
        for key, vals in values.items():
            normalized.setdefault(group, {}).setdefault(key, []).extend(vals)
    return sections, normalized


def check(parsed, known, secret, interpolate, warnings):
    """Warnings for one file: unknown sections and options, `$option`
    references taken literally, secrets in a world-readable file.
    `known`: {group: {option names}}; `secret`: {(group, option)}."""
    holds_secrets = []
    for section, options in parsed.sections.items():
        group = section if section == "DEFAULT" else section.lower()
        if group not in known:
            first = min(parsed.lines.get((section, k), 0) for k in options) if options else 0
            warnings.append(
                "%s:%d: unknown section [%s] is ignored (sections: %s)"
                % (parsed.path, first, section, ", ".join(sorted(known)))
            )
            continue
        names = known[group] | (OSLO_OPTIONS if group == "DEFAULT" else set())
        for key, values in options.items():
            line = parsed.lines.get((section, key), 0)
            name = key.replace("-", "_")
            if name not in names:
                warnings.append(
                    "%s:%d: unknown option %s in [%s] is ignored"
                    % (parsed.path, line, key, section)
                )
                continue
            value = values[-1]
            # A secret option's value is a secret, but for a URL only its password.
            if (group, name) in secret and value:
                if "://" not in value or _URL_PASSWORD.search(value):
                    holds_secrets.append("[%s] %s" % (section, key))
                    continue
            if not interpolate:
                refs = [r for r in _REFERENCE.findall(value) if r in known["DEFAULT"]]
                if refs:
                    warnings.append(
                        "%s:%d: [%s] %s holds $%s, taken literally: set [DEFAULT] "
                        "interpolation = true to expand it"
                        % (parsed.path, line, section, key, refs[0])
                    )
    if holds_secrets:
        try:
            mode = os.stat(parsed.path).st_mode
        except OSError:
            return
        if mode & 0o004:
            warnings.append(
                "%s is readable by every user and holds secrets (%s): chmod 640 it "
                "(group of the service user)" % (parsed.path, ", ".join(holds_secrets))
            )
