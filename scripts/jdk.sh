# Sourced by ./medtune and ./test: finds a JDK 25 and exports JAVA_HOME.
# Order: $JAVA_HOME if it is 25 or newer, then the usual install folders.
medtune_java_major() { "$1/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p'; }
medtune_find_jdk() {
  local c v
  for c in "${JAVA_HOME:-}" /usr/lib/jvm/temurin-25* /usr/lib/jvm/*25* /usr/lib/jvm/* /opt/java/* /opt/jdk* \
           "$HOME"/.sdkman/candidates/java/* /Library/Java/JavaVirtualMachines/*/Contents/Home; do
    [ -n "$c" ] && [ -x "$c/bin/java" ] && [ -x "$c/bin/javac" ] || continue
    v=$(medtune_java_major "$c")
    if [ -n "$v" ] && [ "${v%%.*}" -ge 25 ] 2>/dev/null; then JAVA_HOME=$c; export JAVA_HOME; return 0; fi
  done
  echo "medtune: no JDK 25 found. Install one (for example Temurin 25) and set JAVA_HOME to it." >&2
  return 1
}
