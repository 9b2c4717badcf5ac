#!/usr/bin/env bash
# A lean virtual environment with the real vLLM wheel, for the conformance tier (pytest -m vllm):
#   bash .ci/vllm-env.sh VERSION   ->  .tools/vllm-VERSION/bin/python
# vllm is installed with --no-deps beside the CPU torch 2.13.0 wheel (on these machines already) and
# only the packages its metrics, config and engine-handshake modules import: no CUDA, triton or
# kernels. The versions of those packages come from vLLM's own Requires-Dist where it names them, so
# each release gets the range it was built against. Idempotent: a finished venv is stamped and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:?usage: vllm-env.sh VLLM_VERSION}"
dest=".tools/vllm-$version"
stamp="$dest/.kvscale-ready"
[ -f "$stamp" ] && exit 0
rm -rf "$dest"
python3 -m venv "$dest"
pip=("$dest/bin/pip" install -q --disable-pip-version-check)
"${pip[@]}" "torch==2.13.0"
"${pip[@]}" --no-deps "vllm==$version"
# Import names vLLM's modules need at import (found by importing them on a bare venv), as distributions;
# einops for the model registry's architecture check; gguf, blake3 and diskcache for 0.12.
wanted=(packaging huggingface_hub regex pydantic numpy psutil cbor2 pyzmq transformers tokenizers aiohttp requests
        openai openai-harmony msgspec cloudpickle pillow pybase64 cachetools uvloop py-cpuinfo prometheus_client
        prometheus-fastapi-instrumentator fastapi partial-json-parser llguidance apache-tvm-ffi pyyaml
        einops gguf blake3 diskcache)
# xgrammar is imported by the structured-output modules but would pull triton (1 GB): no deps for it.
"${pip[@]}" packaging
mapfile -t specs < <("$dest/bin/python" - "${wanted[@]}" <<'PY'
import sys
from importlib.metadata import requires

from packaging.requirements import Requirement

def key(name: str) -> str:
    return name.lower().replace("_", "-")

pinned = {}
for raw in requires("vllm") or []:
    req = Requirement(raw)
    if req.marker is None or req.marker.evaluate({"extra": ""}):
        pinned[key(req.name)] = f"{req.name}{req.specifier}"
for name in sys.argv[1:]:
    print(pinned.get(key(name), name).replace("[standard]", ""))
PY
)
"${pip[@]}" "${specs[@]}"
xgrammar="$("$dest/bin/python" -c 'from importlib.metadata import requires
from packaging.requirements import Requirement
print(next((f"xgrammar{r.specifier}" for r in map(Requirement, requires("vllm") or []) if r.name == "xgrammar"), "xgrammar"))')"
"${pip[@]}" --no-deps "$xgrammar"
"$dest/bin/pip" list --disable-pip-version-check --format=freeze > "$dest/installed.txt" 2>/dev/null
touch "$stamp"
