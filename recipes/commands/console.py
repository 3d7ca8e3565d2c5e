"""A quiet console: TensorFlow's C++ start-up log lines hidden, unless the user asks for them.

TensorFlow 2.21 prints, on import and on its first use of a device, lines such as
`I0000 00:00:... port.cc:153] oneDNN custom operations are on ...`, `... cudart_stub.cc:31] Could
not find cuda drivers ...` and `E0000 ... failed call to cuInit ...`, twice some of them (two of its
libraries log), after `WARNING: All log messages before absl::InitializeLog() is called are written
to STDERR`. Those before absl's logging is set up ignore `TF_CPP_MIN_LOG_LEVEL`. So `quiet_tensorflow`
sets TF_CPP_MIN_LOG_LEVEL=3 (later C++ log lines; errors that matter reach Python as exceptions) and
runs the import of `tensorflow`, whenever it happens, with file descriptor 2 sent to a temporary file;
what was written there is then written to stderr, less the C++ log lines: nothing else is lost.

Nothing is hidden when the user set TF_CPP_MIN_LOG_LEVEL themselves or passed `--verbose=2`.
"""
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

LOG_LEVEL = "3"
# absl's format `I0000 00:00:1796541039.209671   12799 port.cc:153] ...`, TensorFlow's own
# `2025-09-17 14:44:05.157831: I external/.../cudart_stub.cc:32] ...`, absl's notice, and the
# continuation line of cpu_feature_guard's message.
TENSORFLOW_LOG_LINE = re.compile(
    r"^(?:[IWEF]\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\] .*"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] [\w./-]+:\d+\] .*"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|To enable the following instructions: .*in other operations, rebuild TensorFlow with the appropriate "
    r"compiler flags\.)$"
)


def asks_for_tensorflow_logs(argv):
    """True when the command line passes --verbose=2 (also `--verbose 2`)."""
    argv = list(argv)
    return any(arg == "--verbose=2" or (arg == "--verbose" and argv[index + 1:index + 2] == ["2"])
               for index, arg in enumerate(argv))


def quiet_tensorflow(argv, environ=None):
    """Hide TensorFlow's C++ log lines for this process unless the user set TF_CPP_MIN_LOG_LEVEL or asks
    with --verbose=2 (see the module's docstring). Call before anything imports TensorFlow; True if it did."""
    environ = os.environ if environ is None else environ
    if "TF_CPP_MIN_LOG_LEVEL" in environ or asks_for_tensorflow_logs(argv):
        return False
    environ["TF_CPP_MIN_LOG_LEVEL"] = LOG_LEVEL
    if "tensorflow" not in sys.modules and not any(isinstance(finder, QuietImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, QuietImport())
    return True


def without_tensorflow_logs(text):
    """`text` less its TensorFlow C++ log lines (TENSORFLOW_LOG_LINE)."""
    return "".join(line for line in text.splitlines(keepends=True) if not TENSORFLOW_LOG_LINE.match(line.rstrip("\n")))


class QuietImport(importlib.abc.MetaPathFinder):
    """Finds module `module` (once; then leaves `sys.meta_path`) and loads it with `QuietLoader`."""

    def __init__(self, module="tensorflow"):
        self.module = module

    def find_spec(self, name, path=None, target=None):
        if name != self.module:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = QuietLoader(spec.loader)
        return spec


class QuietLoader(importlib.abc.Loader):
    """Runs another loader's `exec_module` with file descriptor 2 in a temporary file, then writes what it
    caught to stderr less the TensorFlow log lines."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile(mode="w+b") as caught:
            os.dup2(caught.fileno(), 2)
            try:
                self.loader.exec_module(module)
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                caught.seek(0)
                kept = without_tensorflow_logs(caught.read().decode("utf-8", "replace"))
                if kept:
                    sys.stderr.write(kept)
                    sys.stderr.flush()

    def __getattr__(self, name):
        return getattr(self.loader, name)
