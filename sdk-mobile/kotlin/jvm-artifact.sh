#!/usr/bin/env bash
# Assembles the JVM artifact a desktop or server application depends on,
# in the layout of a Maven repository:
#
#   kotlin/build/maven/dev/tokenrelay/tokenrelay-jvm/VERSION/
#     tokenrelay-jvm-VERSION.jar   the Kotlin layer + uniffi's bindings
#                                  (kotlin/build/tokenrelay.jar) and the
#                                  native library for linux-x86_64 at
#                                  linux-x86-64/libtokenrelay_mobile.so, where
#                                  JNA finds it on the classpath
#     tokenrelay-jvm-VERSION.pom   groupId/artifactId/version, the licence and
#                                  the three dependencies: JNA, kotlin-stdlib,
#                                  kotlinx-coroutines-core (compile scope: the
#                                  API returns SharedFlow/StateFlow)
#
#   kotlin/build/maven/dev/tokenrelay/tokenrelay-jvm-testing/VERSION/
#     tokenrelay-jvm-testing-VERSION.jar   kotlin/testing: startReferenceServer,
#                                          the reference server in JVM tests
#                                          (pure JVM: it runs the server binary)
#     tokenrelay-jvm-testing-VERSION.pom   depends on kotlin-stdlib only
#
# The dependencies' versions are read from the jars the build compiled and
# tested against (Debian's JNA, the npm kotlin-compiler's stdlib and
# coroutines), so the pom states what was run. Publish the directory with
# any Maven repository upload (`mvn deploy:deploy-file -Dfile=… -DpomFile=…`).
# Called by ../build.sh after kotlinc; run alone it needs what that built:
#   kotlin/jvm-artifact.sh LIBRARY   (target/release/libtokenrelay_mobile.so)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
lib="$1"
build="$here/build"
kotlin_home="$here/../node_modules/kotlin-compiler"
jna=/usr/share/java/jna.jar

[ -f "$build/tokenrelay.jar" ] || { echo "jvm-artifact.sh: run sdk-mobile/build.sh first (no $build/tokenrelay.jar)" >&2; exit 1; }
[ -f "$build/tokenrelay-testing.jar" ] || { echo "jvm-artifact.sh: run sdk-mobile/build.sh first (no $build/tokenrelay-testing.jar)" >&2; exit 1; }
[ -f "$lib" ] || { echo "jvm-artifact.sh: no native library at $lib" >&2; exit 1; }
# Only linux-x86_64 is built here: say so rather than mislabel another host's library.
[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || { echo "jvm-artifact.sh: builds the linux-x86_64 artifact only (this is $(uname -s)-$(uname -m))" >&2; exit 1; }

version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$root/Cargo.toml")"
manifest_version() { unzip -p "$1" META-INF/MANIFEST.MF | tr -d '\r' | sed -n "s/^$2: *\([^ ]*\).*/\1/p" | head -1; }
jna_version="$(manifest_version "$jna" Implementation-Version)"
stdlib_version="$(manifest_version "$kotlin_home/lib/kotlin-stdlib.jar" Implementation-Version)"
coroutines_version="$(unzip -p "$kotlin_home/lib/kotlinx-coroutines-core-jvm.jar" META-INF/kotlinx_coroutines_core.version | tr -d '\r\n')"
for v in version jna_version stdlib_version coroutines_version; do
  [ -n "${!v}" ] || { echo "jvm-artifact.sh: could not read $v" >&2; exit 1; }
done

out="$build/maven/dev/tokenrelay/tokenrelay-jvm/$version"
rm -rf "$build/maven"
mkdir -p "$out"
jar="$out/tokenrelay-jvm-$version.jar"
cp "$build/tokenrelay.jar" "$jar"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/linux-x86-64"
cp "$lib" "$stage/linux-x86-64/libtokenrelay_mobile.so"
(cd "$stage" && jar uf "$jar" linux-x86-64/libtokenrelay_mobile.so)

cat > "$out/tokenrelay-jvm-$version.pom" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 https://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.tokenrelay</groupId>
  <artifactId>tokenrelay-jvm</artifactId>
  <version>$version</version>
  <packaging>jar</packaging>
  <name>tokenrelay (JVM)</name>
  <description>Stream AI agent replies over a resumable WebSocket: the Kotlin client of tokenrelay for the JVM, with its native library for linux-x86_64.</description>
  <licenses>
    <license><name>MIT</name><url>https://opensource.org/licenses/MIT</url></license>
    <license><name>Apache-2.0</name><url>https://www.apache.org/licenses/LICENSE-2.0</url></license>
  </licenses>
  <dependencies>
    <dependency>
      <groupId>net.java.dev.jna</groupId>
      <artifactId>jna</artifactId>
      <version>$jna_version</version>
    </dependency>
    <dependency>
      <groupId>org.jetbrains.kotlin</groupId>
      <artifactId>kotlin-stdlib</artifactId>
      <version>$stdlib_version</version>
    </dependency>
    <dependency>
      <groupId>org.jetbrains.kotlinx</groupId>
      <artifactId>kotlinx-coroutines-core-jvm</artifactId>
      <version>$coroutines_version</version>
    </dependency>
  </dependencies>
</project>
EOF
ls -l "$out"

# The test helper: pure JVM, so one jar for every platform.
testing_out="$build/maven/dev/tokenrelay/tokenrelay-jvm-testing/$version"
mkdir -p "$testing_out"
cp "$build/tokenrelay-testing.jar" "$testing_out/tokenrelay-jvm-testing-$version.jar"
cat > "$testing_out/tokenrelay-jvm-testing-$version.pom" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 https://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.tokenrelay</groupId>
  <artifactId>tokenrelay-jvm-testing</artifactId>
  <version>$version</version>
  <packaging>jar</packaging>
  <name>tokenrelay testing (JVM)</name>
  <description>The tokenrelay reference server in JVM test suites: startReferenceServer() runs the tokenrelay-server binary with a bootstrapped org on a free port.</description>
  <licenses>
    <license><name>MIT</name><url>https://opensource.org/licenses/MIT</url></license>
    <license><name>Apache-2.0</name><url>https://www.apache.org/licenses/LICENSE-2.0</url></license>
  </licenses>
  <dependencies>
    <dependency>
      <groupId>org.jetbrains.kotlin</groupId>
      <artifactId>kotlin-stdlib</artifactId>
      <version>$stdlib_version</version>
    </dependency>
  </dependencies>
</project>
EOF
ls -l "$testing_out"
