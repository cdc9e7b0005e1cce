// Android library (.aar) build of the Kotlin package, for a machine with the
// Android SDK and NDK. NOT built in this repository's CI (no Android SDK
// there): CI compiles the same sources with kotlinc and runs them on a JVM
// (sdk-mobile/test.sh). Layout, as the Android Gradle plugin expects it:
//
//   src/main/kotlin/dev/tokenrelay/Client.kt        hand-written layer
//   build/generated/dev/tokenrelay/tokenrelay_mobile.kt   uniffi (../build.sh)
//   src/main/jniLibs/<abi>/libtokenrelay_mobile.so  cargo-ndk output (below)
//
// Before `./gradlew assembleRelease`:
//   cargo install cargo-ndk
//   rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android
//   # 16 KB pages (Android 15+ devices, required by Google Play): every LOAD
//   # segment aligned to 16 KB. NDK r28+ does this by default; say it anyway.
//   RUSTFLAGS="-C link-arg=-Wl,-z,max-page-size=16384" \
//   cargo ndk -t arm64-v8a -t armeabi-v7a -t x86_64 -o sdk-mobile/kotlin/src/main/jniLibs \
//       build --release -p tokenrelay-mobile --lib
//   # check: llvm-readelf -lW .../arm64-v8a/libtokenrelay_mobile.so  (LOAD Align 0x4000)
//   sdk-mobile/build.sh     # the generated Kotlin (uniffi-bindgen --library)
//
// Publishes dev.tokenrelay:tokenrelay-android:<version> (aar).
plugins {
    id("com.android.library") version "8.5.2"
    id("org.jetbrains.kotlin.android") version "2.0.20"
    `maven-publish`
}

group = "dev.tokenrelay"
version = "0.1.0"

android {
    namespace = "dev.tokenrelay"
    compileSdk = 34
    defaultConfig {
        minSdk = 24
        consumerProguardFiles("consumer-rules.pro")
    }
    sourceSets["main"].java.srcDirs("src/main/kotlin", "build/generated")
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }
    publishing { singleVariant("release") { withSourcesJar() } }
}

dependencies {
    // JNA's Android flavour carries libjnidispatch for every ABI. 5.17.0 is
    // the first whose prebuilt libjnidispatch.so is 16 KB-aligned (older
    // ones crash on load on 16 KB-page devices: java-native-access/jna#1647);
    // 5.15+ needs Android 7 (API 24), this library's minSdk.
    implementation("net.java.dev.jna:jna:5.17.0@aar")
    // `api`: the public API returns SharedFlow and StateFlow, so an app
    // compiles against kotlinx-coroutines through this library.
    api("org.jetbrains.kotlinx:kotlinx-coroutines-core:1.8.1")
}

publishing {
    publications {
        register<MavenPublication>("release") {
            artifactId = "tokenrelay-android"
            afterEvaluate { from(components["release"]) }
        }
    }
}
