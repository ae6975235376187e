# Sourced by start.sh and scripts/test.sh: the part that must run before Python exists.
# Creates .venv and installs the project when pyproject.toml changed since the last install.
bootstrap_venv() {
    local extras="${1:-}"
    local python="${PYTHON:-python3}"
    if [ ! -x .venv/bin/python ]; then
        echo "Creating the virtual environment in .venv ..."
        "$python" -m venv .venv
    fi
    local hash installed
    hash="$(sha256sum pyproject.toml | cut -c1-16)"
    installed="$(cat .venv/.pcm-installed 2>/dev/null || true)"
    # An install with the dev extras also serves start.sh; a plain one does not serve the tests.
    if [ "$installed" = "$hash$extras" ] || { [ -z "$extras" ] && [ "${installed%%\[*}" = "$hash" ]; }; then
        return 0
    fi
    echo "Installing PCM-Ops Tools${extras:+ with $extras} into .venv ..."
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras}"
    echo "$hash$extras" > .venv/.pcm-installed
}
