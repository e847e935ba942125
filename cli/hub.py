"""`lgen push | pull | card`: share bundles on the Hugging Face Hub and write their model cards.

Registers its commands on the `app` of cli/app.py (imported at the end of that module).
All three are torch-free: they use lifelong_gen/bundle/hub.py (huggingface_hub), resolve.py
(the bundle `push` and `card` are given) and model_card.py (Jinja2). The Hub token comes from
HF_TOKEN or `hf auth login`, the endpoint from HF_ENDPOINT, the cache from HF_HOME /
HF_HUB_CACHE; HF_HUB_OFFLINE=1 makes `pull` answer from the cache. Failures are one line `lgen: error: ...`, exit code 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from lifelong_gen.cli.app import app, renamed_option
from lifelong_gen.errors import LgenError


@app.command(short_help="Upload a bundle to the Hugging Face Hub in one commit.")
def push(
    bundle: str = typer.Argument(..., help="Exported run or bundle directory (after `lgen export`)"),
    repo_id: str = typer.Argument(..., metavar="ORG/NAME", help="Hub model repo; created if missing"),
    private: bool = typer.Option(False, "--private", help="Create the repo private (an existing repo keeps its visibility)"),
    revision: Optional[str] = typer.Option(None, "--revision", help="Branch to commit to (created from main if missing)"),
    with_critic: bool = typer.Option(False, "--with-critic", help="Also upload critic.safetensors (to continue training)"),
    message: Optional[str] = typer.Option(None, "--message", "-m", help="Commit message"),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary"),
) -> None:
    """Upload a bundle in one commit: config, weights, ONNX, metrics, previews, model card.

    The model card is the bundle's README.md, rendered for ORG/NAME when the bundle has none
    (`lgen card BUNDLE` writes it into the bundle to edit first).
    """
    from lifelong_gen.bundle import hub
    from lifelong_gen.bundle.resolve import resolve_bundle

    result = hub.push(resolve_bundle(bundle, ()).path, repo_id, private=private, revision=revision, with_critic=with_critic,
                      commit_message=message)
    if as_json:
        typer.echo(json.dumps(result))
    else:
        typer.echo(f"{result['commit_url']}  ({len(result['files'])} files to {result['repo_id']}@{result['revision']})")


@app.command(short_help="Download a bundle through the Hugging Face cache.")
def pull(
    repo: str = typer.Argument(..., metavar="ORG/NAME[@REV]", help="Hub model repo, optionally at a branch, tag or commit"),
    directory: Optional[Path] = typer.Option(None, "--out", help="Copy the bundle into this directory (default: the HF "
                                                                 "cache only)"),
    directory_old: Optional[Path] = typer.Option(None, "--dir", hidden=True),  # the old spelling, for one release
    onnx_only: bool = typer.Option(False, "--onnx-only", help="Only config.json and onnx/*.onnx (what sampling needs)"),
) -> None:
    """Download a bundle through the Hugging Face cache and print its directory.

    Everything but the critic unless it was pushed (config, weights, ONNX, card, metrics,
    previews). Offline (HF_HUB_OFFLINE=1) it answers from the cache.
    """
    from lifelong_gen.bundle import hub

    directory = renamed_option("--dir", "--out", directory_old, directory)
    ref = hub.parse_repo_ref(repo)
    if ref is None:
        raise LgenError(f"{repo!r} is not a Hub repo id of the form org/name[@revision]")
    if directory is not None and directory.exists() and not directory.is_dir():
        raise LgenError(f"--out {directory} exists and is not a directory")
    path, warnings = hub.pull(ref, local_dir=directory, onnx_only=onnx_only)
    for warning in warnings:
        print(f"lgen: warning: {warning}", file=sys.stderr)
    typer.echo(str(path))


@app.command(short_help="Render a bundle's model card (README.md).")
def card(
    bundle: str = typer.Argument(..., help="Run or bundle directory (config.json; metrics.json, PNGs, onnx/ if present)"),
    repo_id: Optional[str] = typer.Option(None, "--repo-id", metavar="ORG/NAME", help="Hub repo named in the usage examples"),
    note: list[str] = typer.Option([], "--note", help="A note shown under the title (repeatable)"),
    license: str = typer.Option("mit", "--license", help="Hub license id of the weights"),
    with_critic: bool = typer.Option(False, "--with-critic", help="List critic.safetensors (as push --with-critic)"),
) -> None:
    """Render the model card into BUNDLE/README.md (atomically; replaces an existing one)."""
    from lifelong_gen.bundle import hub
    from lifelong_gen.bundle.model_card import write_card
    from lifelong_gen.bundle.resolve import installed_location, resolve_bundle

    if repo_id is not None:
        ref = hub.parse_repo_ref(repo_id)
        if ref is None or ref.revision is not None:
            raise LgenError(f"--repo-id {repo_id!r} is not a Hub repo id of the form org/name")
    path = resolve_bundle(bundle, ()).path
    where = installed_location(path)
    if where is not None:  # a shipped or cached model's files are listed in its manifest: never rewritten
        raise LgenError(f"{path} is in {where}, which lgen card never writes into: its README.md is its card "
                        f"already (copy the bundle elsewhere to render a new one)")
    typer.echo(str(write_card(path, repo_id=repo_id, notes=note, license=license, with_critic=with_critic)))
