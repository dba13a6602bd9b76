# Sourced by scripts/test: find each Python we claim, and keep a test venv for each.
#
# find_python X.Y      prints an interpreter of exactly version X.Y, or fails.
# venv_for_python X.Y INTERPRETER
#                      makes .venv-X.Y from INTERPRETER once, and (re)installs the
#                      package with its test extra when pyproject.toml changed since.
# Both expect $PYTHON (the main interpreter), log and die from scripts/test.

# Prints "X.Y" of interpreter $1, or fails (a pyenv shim of an inactive version fails).
python_version_of() {
    "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null
}

# uv when at hand (on PATH, or the copy the package depends on): it makes and fills a
# venv in seconds where pip takes minutes.
uv_command() {
    if command -v uv >/dev/null 2>&1; then
        echo uv
    elif "$PYTHON" -m uv --version >/dev/null 2>&1; then
        echo "$PYTHON -m uv"
    else
        return 1
    fi
}

find_python() {
    local version=$1 candidate found
    local pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
    # Newest patch release first where several are installed.
    local candidates=("python$version")
    while IFS= read -r found; do candidates+=("$found"); done < <(
        ls -d "$pyenv_root"/versions/"$version".*/bin/python"$version" 2>/dev/null | sort -rV
    )
    candidates+=("/usr/bin/python$version" "/usr/local/bin/python$version")
    for candidate in "${candidates[@]}"; do
        command -v "$candidate" >/dev/null 2>&1 || continue
        if [[ $(python_version_of "$candidate") == "$version" ]]; then
            command -v "$candidate"
            return 0
        fi
    done
    # Pythons uv installed (`uv python install`); `uv python find` never downloads.
    local uv
    if uv=$(uv_command) && found=$($uv python find --system "$version" 2>/dev/null) \
        && [[ $(python_version_of "$found") == "$version" ]]; then
        echo "$found"
        return 0
    fi
    return 1
}

venv_for_python() {
    local version=$1 interpreter=$2 venv=".venv-$1" uv stamp
    stamp=$(cksum <pyproject.toml)
    if [[ ! -x "$venv/bin/python" || $(python_version_of "$venv/bin/python") != "$version" ]]; then
        log "making $venv from $interpreter"
        rm -rf "$venv"
        if uv=$(uv_command); then
            $uv venv -q --python "$interpreter" "$venv" || return 1
        else
            "$interpreter" -m venv "$venv" || return 1
        fi
    elif [[ "${MLMAGIC_SKIP_INSTALL:-}" == 1 || $(cat "$venv/.mlmagic-installed" 2>/dev/null) == "$stamp" ]]; then
        return 0
    fi
    log "pip install -e '.[test]' into $venv (no labextension build)"
    # The fast tier needs no labextension, and the main install already builds it.
    if uv=$(uv_command); then
        SKIP_JUPYTER_BUILDER=1 $uv pip install -q --python "$venv/bin/python" -e '.[test]' || return 1
    else
        SKIP_JUPYTER_BUILDER=1 "$venv/bin/python" -m pip install -q -e '.[test]' || return 1
    fi
    echo "$stamp" >"$venv/.mlmagic-installed"
}
