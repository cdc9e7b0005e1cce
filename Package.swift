// swift-tools-version:5.9
// The Swift package of tokenrelay, consumable by URL:
//     .package(url: "https://example.invalid/tokenrelay", from: "0.1.0")
//     .product(name: "TokenRelay", package: "tokenrelay")
// Module `TokenRelay`: the uniffi-generated bindings and the hand-written
// layer (sdk-mobile/swift/Sources/TokenRelay) over the Rust library, which
// comes as a prebuilt XCFramework zip attached to the release. Its URL and
// checksum below are written by sdk-mobile/scripts/release-swift.sh; the
// release commit also carries the generated sources (see sdk-mobile/README.md,
// "Releasing the Swift package"). To work on the package from a checkout, use
// sdk-mobile/swift/Package.swift (a local xcframework) instead.
import PackageDescription

// Written by sdk-mobile/scripts/release-swift.sh: do not edit by hand.
let ffiURL = "https://example.invalid/tokenrelay/releases/download/v0.1.0/TokenRelayFFI.xcframework.zip"
let ffiChecksum = "0000000000000000000000000000000000000000000000000000000000000000"

let package = Package(
    name: "TokenRelay",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "TokenRelay", targets: ["TokenRelay"]),
    ],
    targets: [
        // The Rust static library for every Apple platform, its C headers
        // and module map (module `tokenrelay_mobileFFI`).
        .binaryTarget(name: "tokenrelay_mobileFFI", url: ffiURL, checksum: ffiChecksum),
        .target(
            name: "TokenRelay",
            dependencies: ["tokenrelay_mobileFFI"],
            path: "sdk-mobile/swift/Sources/TokenRelay"
        ),
        .testTarget(
            name: "TokenRelayTests",
            dependencies: ["TokenRelay"],
            path: "sdk-mobile/swift/Tests/TokenRelayTests"
        ),
    ]
)
