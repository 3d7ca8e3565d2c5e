"""Where a run's code came from: the project version and the git commit of the source tree."""
import configparser
import os
import subprocess

_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def project_version():
    """The face-recipes version: from the source tree's setup.cfg, else the installed package's metadata."""
    parser = configparser.ConfigParser()
    try:
        parser.read(os.path.join(_PROJECT_ROOT, "setup.cfg"))
        version = parser.get("metadata", "version", fallback=None)
    except configparser.Error:
        version = None
    if version:
        return version
    try:
        from importlib.metadata import PackageNotFoundError, version as package_version

        return package_version("face-recipes")
    except PackageNotFoundError:
        return None


def git_commit():
    """(commit hash, has uncommitted changes) of the source tree, or (None, None) when git cannot tell.

    Read-only: `rev-parse` and `--no-optional-locks status`, which never write the index.
    """
    def git(*args):
        return subprocess.run(["git", "--no-optional-locks", "-C", _PROJECT_ROOT, *args], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit or None, dirty if commit else None
