# Sourced by the test scripts: `need MODULE[=PACKAGE] ...` installs each PyPI package whose
# module does not import with $PY.
need() {
  local spec mod pkg
  for spec in "$@"; do
    mod="${spec%%=*}"
    pkg="${spec#*=}"
    if ! "$PY" -c "import $mod" 2>/dev/null; then
      "$PY" -m pip install --quiet --disable-pip-version-check "$pkg"
    fi
  done
}
