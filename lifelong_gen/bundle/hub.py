"""Hugging Face Hub I/O: push and pull model bundles, download what a `ORG/NAME[@REV]` names.

Owns everything that talks to the Hub (through huggingface_hub, never hand-written HTTP):

- `parse_repo_ref`: the `ORG/NAME[@REV]` form (resolve.py decides when a string is meant as one).
- `download` / `pull`: snapshot_download into the HF cache (HF_HOME, HF_HUB_CACHE) with
  allow_patterns, so a command fetches only the files it needs (sampling: config.json +
  onnx/*.onnx + d_classes.json, no safetensors), and HF_HUB_OFFLINE=1 works from the cache.
- `push`: one commit with config.json, the safetensors weights (the critic only when asked),
  onnx/*.onnx, metrics.json, the d -> class table, preview PNGs and the model card (rendered
  when the bundle has no README.md).

Every failure becomes a one-line LgenError (repo or revision not found, offline with nothing
cached, a bundle missing a required file, a config from a newer format). Torch-free, even
inside functions; huggingface_hub itself is imported where used, so `lgen sample --model DIR`
never pays for it.
"""

from __future__ import annotations

import contextlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from lifelong_gen import __version__
from lifelong_gen.bundle import (
    CARD_NAME,
    CONFIG_NAME,
    D_CLASSES_NAME,
    IMAGE_PATTERNS,
    MANIFEST_NAME,
    METRICS_NAME,
    NETWORK_FILES,
    ONNX_DIR,
    ONNX_FILES,
    REPORT_NAME,
    RUNTIME_FILES,
    bundle_images,
    stale_onnx,
)
from lifelong_gen.config import read_run_config
from lifelong_gen.errors import LgenError, one_line

# What the ONNX runtime needs (sample, encode, interpolate), as download patterns.
# manifest.json (when the bundle has one) lets every reader check what it downloaded (manifest.py);
# d_classes.json (when evaluated) names the d's for `sample --class` and `encode`.
RUNTIME_PATTERNS = (CONFIG_NAME, f"{ONNX_DIR}/*.onnx", MANIFEST_NAME, D_CLASSES_NAME)
# A pushed bundle always has these; the critic only with --with-critic.
PUSH_REQUIRED = RUNTIME_FILES + (NETWORK_FILES["G"], NETWORK_FILES["G_ema"], NETWORK_FILES["S"])
# Everything `lgen pull` fetches (without --onnx-only); the extras are fetched when present.
PULL_PATTERNS = RUNTIME_PATTERNS + ("*.safetensors", CARD_NAME, METRICS_NAME, REPORT_NAME, *IMAGE_PATTERNS)

# org/name[@revision]: the Hub's character set for namespaces and names.
_REPO_REF = re.compile(r"(?P<repo>[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*)(?:@(?P<rev>[^\s@]+))?")


@dataclass(frozen=True)
class RepoRef:
    """A Hub model repo and an optional revision (branch, tag or commit; None: main)."""

    repo_id: str
    revision: Optional[str] = None

    def __str__(self) -> str:
        return self.repo_id + (f"@{self.revision}" if self.revision else "")


def parse_repo_ref(value: str) -> Optional[RepoRef]:
    """`org/name` or `org/name@rev` -> RepoRef; None when `value` does not look like one."""
    match = _REPO_REF.fullmatch(str(value))
    if match is None or ".." in match["repo"] or "--" in match["repo"]:
        return None
    return RepoRef(match["repo"], match["rev"])


# ---------------------------------------------------------------- huggingface_hub and its errors


# Whether huggingface_hub is to be quiet (the CLI), applied when hub.py first imports it.
_QUIET = {"wanted": False, "done": False}


def _hf():
    try:
        import huggingface_hub
    except ImportError:
        raise LgenError("huggingface_hub is not installed: pip install huggingface-hub") from None
    if _QUIET["wanted"] and not _QUIET["done"]:
        from huggingface_hub.utils import disable_progress_bars, logging

        logging.set_verbosity_error()
        if not sys.stderr.isatty():
            disable_progress_bars()
        _QUIET["done"] = True
    return huggingface_hub


def quiet_hub_output() -> None:
    """For the CLI: huggingface_hub logs errors only, progress bars only on a terminal.

    Keeps stderr to the one `lgen: error: ...` line when something fails. Takes effect when a
    command first talks to the Hub, so a command that never does never imports huggingface_hub.
    """
    _QUIET["wanted"] = True


def _is_network_error(error: BaseException) -> bool:
    """A failed connection or timeout of the HTTP client under huggingface_hub (httpx, requests)."""
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    names = {cls.__name__ for cls in type(error).__mro__}
    module = type(error).__module__.split(".")[0]
    return module in ("httpx", "httpx2", "httpcore", "requests", "urllib3") and bool(
        names & {"ConnectError", "ConnectionError", "TimeoutException", "Timeout", "NetworkError", "ProxyError"})


def _endpoint(endpoint: Optional[str]) -> str:
    import huggingface_hub.constants as constants

    return endpoint or constants.ENDPOINT


@contextlib.contextmanager
def hub_errors(ref: RepoRef, action: str, endpoint: Optional[str] = None, local_hint: bool = False) -> Iterator[None]:
    """Turn huggingface_hub's exceptions into one-line LgenErrors.

    Args:
        ref: the repo the call is about (named in the message).
        action: what was being done, e.g. "download" or "push to".
        local_hint: `ref` came from a --model value that could also have been a local path.
    """
    _hf()
    import huggingface_hub.constants as constants
    import huggingface_hub.utils as errors  # re-exports the exception types in old and new versions

    try:
        from huggingface_hub.errors import IncompleteSnapshotError as incomplete  # newer versions only
    except ImportError:
        incomplete = ()
    login = "log in with `hf auth login` or set HF_TOKEN"
    try:
        yield
    except LgenError:
        raise
    except errors.RevisionNotFoundError:
        raise LgenError(f"revision {ref.revision!r} not found in Hub repo {ref.repo_id}") from None
    except errors.GatedRepoError:
        raise LgenError(f"Hub repo {ref.repo_id} is gated: accept its conditions on the Hub and {login}") from None
    except errors.RepositoryNotFoundError:
        local = f"no local directory {ref}, and " if local_hint else ""
        raise LgenError(f"{local}Hub repo {ref.repo_id} not found (or it is private: {login})") from None
    except errors.LocalEntryNotFoundError as e:  # offline (or unreachable) and not in the cache
        cache = constants.HF_HUB_CACHE
        partly = "only partly" if incomplete and isinstance(e, incomplete) else "not"
        if constants.HF_HUB_OFFLINE:
            raise LgenError(f"{ref} is {partly} in the Hugging Face cache ({cache}) and HF_HUB_OFFLINE=1 forbids "
                            f"downloading it: run `lgen pull {ref}` while online") from None
        cause = e.__cause__ or e
        raise LgenError(f"cannot reach the Hub at {_endpoint(endpoint)} and {ref} is {partly} in the cache "
                        f"({cache}): {one_line(cause, first_line=True)}") from None
    except errors.EntryNotFoundError as e:
        raise LgenError(f"Hub repo {ref} lacks a file: {one_line(e, first_line=True)}") from None
    except errors.OfflineModeIsEnabled:
        raise LgenError(f"HF_HUB_OFFLINE=1 is set: cannot {action} {ref} (unset it to go online)") from None
    except errors.HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status in (401, 403):
            raise LgenError(f"not allowed to {action} {ref} (HTTP {status}): {login} with a token that has "
                            f"{'write' if action.startswith('push') else 'read'} access") from None
        server = getattr(e, "server_message", None) or one_line(e, first_line=True)
        raise LgenError(f"the Hub answered HTTP {status} when trying to {action} {ref}: "
                        f"{' '.join(str(server).split())[:200]}") from None
    except errors.HFValidationError as e:
        raise LgenError(f"{ref} is not a valid Hub repo id: {one_line(e, first_line=True)}") from None
    except Exception as e:
        if _is_network_error(e):
            raise LgenError(f"cannot reach the Hub at {_endpoint(endpoint)} to {action} {ref}: "
                            f"{one_line(e, first_line=True)}") from None
        raise


# ---------------------------------------------------------------- download


def _check_files(root: Path, required: Sequence[str], where: str, hint: str) -> None:
    missing = [rel for rel in required if not (root / rel).is_file()]
    if missing:
        raise LgenError(f"{where} has no {', '.join(missing)}{hint}")


def _check_config(root: Path) -> None:
    """config.json must parse as a RunConfig of a format this version reads (newer -> error)."""
    read_run_config(root)


def download(ref: RepoRef, patterns: Sequence[str], *, local_dir: Optional[Path] = None,
             endpoint: Optional[str] = None, local_hint: bool = False) -> Path:
    """Fetch the files of `ref` matching `patterns` (through the HF cache) and return the folder.

    Args:
        ref: repo and revision.
        patterns: allow_patterns of snapshot_download (fnmatch, relative to the repo root).
        local_dir: copy the files into this directory instead of returning the cache snapshot.
        endpoint: the Hub URL; default HF_ENDPOINT (or huggingface.co).
        local_hint: say "no local directory" too when the repo does not exist.
    """
    hf = _hf()
    kwargs: dict[str, Any] = {"revision": ref.revision, "allow_patterns": list(patterns),
                              "library_name": "lifelong-gen", "library_version": __version__}
    if local_dir is not None:
        kwargs["local_dir"] = str(local_dir)
    if endpoint is not None:
        kwargs["endpoint"] = endpoint
    with hub_errors(ref, "download", endpoint, local_hint):
        path = hf.snapshot_download(ref.repo_id, **kwargs)
    return Path(path)


def hf_hub_cache() -> Optional[Path]:
    """The Hugging Face hub cache directory (HF_HUB_CACHE, HF_HOME/hub), or None without huggingface_hub."""
    try:
        import huggingface_hub.constants as constants
    except ImportError:
        return None
    return Path(constants.HF_HUB_CACHE).expanduser()


def pull(ref: RepoRef, *, local_dir: Optional[Path] = None, onnx_only: bool = False,
         endpoint: Optional[str] = None) -> tuple[Path, list[str]]:
    """Download a bundle: everything (`PULL_PATTERNS`) or only what sampling needs.

    Returns:
        (the bundle folder: the HF cache snapshot, or `local_dir`; warnings for the user).
    """
    path = download(ref, RUNTIME_PATTERNS if onnx_only else PULL_PATTERNS, local_dir=local_dir, endpoint=endpoint)
    _check_files(path, RUNTIME_FILES if onnx_only else (CONFIG_NAME,), f"Hub repo {ref}",
                 ": not a lifelong-gen bundle (or pushed without `lgen export`)")
    _check_config(path)
    warnings = []
    missing_onnx = [rel for rel in ONNX_FILES if not (path / rel).is_file()]
    if missing_onnx:
        warnings.append(f"{ref} has no {', '.join(missing_onnx)}: `lgen sample | encode | interpolate` need them "
                        f"(they come with a bundle exported by `lgen export` before `lgen push`)")
    return path, warnings


# ---------------------------------------------------------------- push


def push_files(bundle: Path, *, with_critic: bool = False) -> list[str]:
    """The files of `bundle` that `push` uploads (relative, posix), after checking the bundle.

    Required: config.json (a config this version reads), the G, EMA-G and S weights, the two
    ONNX files, no older than the weights; the critic with `with_critic`. Uploaded when present:
    README.md, metrics.json, report.md and d_classes.json (`lgen evaluate`), preview PNGs (samples/,
    figures/, top level).
    """
    bundle = Path(bundle)
    if not bundle.is_dir():
        raise LgenError(f"{bundle} is not a directory (expected an exported run or bundle directory)")
    required = list(PUSH_REQUIRED) + ([NETWORK_FILES["D"]] if with_critic else [])
    hint = ""
    if not all((bundle / rel).is_file() for rel in ONNX_FILES):
        hint = f": run `lgen export {bundle}` first"
    _check_files(bundle, required, f"bundle {bundle}", hint)
    _check_config(bundle)
    stale = stale_onnx(bundle, [rel for rel in required if rel in NETWORK_FILES.values()])
    if stale:
        raise LgenError(stale)
    from lifelong_gen.bundle import manifest

    manifest.verify(bundle, required, notice=False)  # a damaged file is never uploaded
    extras = [rel for rel in (CARD_NAME, METRICS_NAME, REPORT_NAME, D_CLASSES_NAME, MANIFEST_NAME)
              if (bundle / rel).is_file()]
    if D_CLASSES_NAME in extras:
        manifest.verify(bundle, [D_CLASSES_NAME], notice=False)
    return required + extras + [p.as_posix() for p in bundle_images(bundle)]


def push(bundle: Path, repo_id: str, *, private: bool = False, revision: Optional[str] = None,
         with_critic: bool = False, commit_message: Optional[str] = None, endpoint: Optional[str] = None,
         token: Optional[str] = None) -> dict[str, Any]:
    """Upload a bundle to a Hub model repo in one commit (creating the repo and branch if needed).

    Args:
        bundle: an exported run or bundle directory.
        repo_id: "org/name".
        private: create the repo private (an existing repo keeps its visibility).
        revision: branch to commit to (created from main when missing); None: main.
        with_critic: also upload critic.safetensors (only needed to continue training).
        token: a Hub token; None: HF_TOKEN or the saved login.

    Returns:
        {"repo_id", "revision", "commit", "commit_url", "files"}.
    """
    ref = parse_repo_ref(repo_id)
    if ref is None or ref.revision is not None:
        raise LgenError(f"{repo_id!r} is not a Hub repo id of the form org/name (give a branch with --revision)")
    files = push_files(bundle, with_critic=with_critic)
    bundle = Path(bundle)
    hf = _hf()
    operations = [hf.CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(bundle / rel)) for rel in files]
    if CARD_NAME not in files:  # render the card for this repo; the bundle itself is left as it is
        from lifelong_gen.bundle.model_card import render_card

        card = render_card(bundle, repo_id=ref.repo_id, with_critic=with_critic).encode("utf-8")
        operations.append(hf.CommitOperationAdd(path_in_repo=CARD_NAME, path_or_fileobj=card))
        files = files + [CARD_NAME]
    target = RepoRef(ref.repo_id, revision)
    api = hf.HfApi(endpoint=endpoint, token=token, library_name="lifelong-gen", library_version=__version__)
    with hub_errors(target, "push to", endpoint):
        api.create_repo(ref.repo_id, repo_type="model", private=private, exist_ok=True)
        if revision not in (None, "main"):
            api.create_branch(ref.repo_id, branch=revision, repo_type="model", exist_ok=True)
        info = api.create_commit(
            ref.repo_id, operations=operations, repo_type="model", revision=revision,
            commit_message=commit_message or f"Upload lifelong-gen bundle ({len(files)} files)",
        )
    return {"repo_id": ref.repo_id, "revision": revision or "main", "commit": info.oid,
            "commit_url": info.commit_url, "files": files}
