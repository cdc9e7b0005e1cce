// swift-tools-version:5.9
// The Swift package of tokenrelay: module `TokenRelay` (the uniffi-generated
// bindings plus Sources/TokenRelay/Client.swift) over the Rust library,
// shipped as build/TokenRelayFFI.xcframework. Build that first, on a Mac:
//     sdk-mobile/swift/build-xcframework.sh
// then add this directory as a local package. To depend on a release by URL,
// use the repository root's Package.swift (binaryTarget(url:checksum:),
// written by sdk-mobile/scripts/release-swift.sh).
import PackageDescription

let package = Package(
    name: "TokenRelay",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "TokenRelay", targets: ["TokenRelay"]),
    ],
    targets: [
        // The Rust static library for every Apple platform, its C header and
        // module map (module `tokenrelay_mobileFFI`).
        .binaryTarget(name: "tokenrelay_mobileFFI", path: "build/TokenRelayFFI.xcframework"),
        .target(
            name: "TokenRelay",
            dependencies: ["tokenrelay_mobileFFI"],
            path: "Sources/TokenRelay"
        ),
        .testTarget(
            name: "TokenRelayTests",
            dependencies: ["TokenRelay"],
            path: "Tests/TokenRelayTests"
        ),
    ]
)
