// Runs on a Mac after build-xcframework.sh (`swift test`), against a
// reference server the developer started with fault injection:
//     cargo run --release -p tokenrelay-server -- --fault-injection serve
//     TOKENRELAY_WS_URL=ws://127.0.0.1:8080/ws TOKENRELAY_CONTEXT=… \
//     TOKENRELAY_CLIENT_KEY=… swift test
// Not run in this repository's CI (no Swift toolchain on Linux).

import XCTest
@testable import TokenRelay

final class TokenRelayTests: XCTestCase {
    func testBadUrlIsAConfigError() throws {
        XCTAssertThrowsError(try Client(wsUrl: "http://example.invalid/ws") { _ in "k" }) { error in
            guard case TokenRelayError.config = error else {
                return XCTFail("expected .config, got \(error)")
            }
        }
    }

    func testAskAndEvents() async throws {
        let env = ProcessInfo.processInfo.environment
        guard let url = env["TOKENRELAY_WS_URL"], let context = env["TOKENRELAY_CONTEXT"],
              let key = env["TOKENRELAY_CLIENT_KEY"] else {
            throw XCTSkip("set TOKENRELAY_WS_URL, TOKENRELAY_CONTEXT and TOKENRELAY_CLIENT_KEY")
        }
        let client = try Client(wsUrl: url) { _ in key }
        let conn = try await client.connect(context)
        let reply = try await conn.ask("[tokens=5] hi")
        XCTAssertEqual(reply.text, "t0 t1 t2 t3 t4")
        XCTAssertEqual(reply.status, .complete)
        var tokens = ""
        for await event in conn.events {
            if case let .token(_, token) = event { tokens += token }
            if case let .responseComplete(response) = event, response.id == reply.id { break }
        }
        XCTAssertEqual(tokens, reply.text)
        await conn.close()
    }
}
