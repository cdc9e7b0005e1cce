// A SwiftUI chat screen on the TokenRelay Swift package: streams the
// agent's reply token by token, shows the connection state, and wires the
// app lifecycle (scenePhase) and reachability (NWPathMonitor) to the
// connection's pause()/resume()/setNetworkAvailable(). A documented
// snippet: it is parsed in CI (tree-sitter-swift) but not compiled, since
// there is no Swift toolchain there. See README.md beside it.

import Network
import SwiftUI
import TokenRelay

@MainActor
final class ChatModel: ObservableObject {
    @Published var transcript = ""
    @Published var status = "idle"
    private var connection: Connection?
    private let monitor = NWPathMonitor()

    /// Connects; `backend` is the app's own endpoint that mints client keys.
    func start(contextId: String, backend: URL) async {
        do {
            let client = try Client(wsUrl: "wss://relay.example.com/ws") { contextId in
                // Called on every (re)connect: never cache the key.
                var request = URLRequest(url: backend)
                request.httpMethod = "POST"
                request.setValue("application/json", forHTTPHeaderField: "Content-Type")
                request.httpBody = try JSONSerialization.data(withJSONObject: ["contextId": contextId])
                let (data, response) = try await URLSession.shared.data(for: request)
                if (response as? HTTPURLResponse)?.statusCode == 403 {
                    // The user lost access: end the connection instead of retrying.
                    throw TokenRelayError.forbidden(detail: "logged out", code: nil, status: 403)
                }
                let body = try JSONSerialization.jsonObject(with: data) as? [String: Any]
                return body?["clientToken"] as? String ?? ""
            }
            let conn = try await client.connect(contextId)
            connection = conn
            monitor.pathUpdateHandler = { path in
                conn.setNetworkAvailable(path.status == .satisfied)
            }
            monitor.start(queue: .global(qos: .utility))
            for await event in conn.events {
                switch event {
                case let .token(_, token):
                    transcript += token
                case .responseComplete:
                    transcript += "\n\n"
                case let .stateChanged(change):
                    status = "\(change.state)"
                default:
                    break
                }
            }
        } catch {
            status = "error: \(error)"
        }
    }

    func send(_ text: String) {
        guard let connection else { return }
        transcript += "> \(text)\n"
        Task { try? await connection.sendMessage(text) }
    }

    func lifecycle(_ phase: ScenePhase) {
        switch phase {
        case .background: connection?.pause()
        case .active: connection?.resume()
        default: break
        }
    }
}

struct ChatView: View {
    @StateObject private var model = ChatModel()
    @State private var draft = ""
    @Environment(\.scenePhase) private var scenePhase
    let contextId: String
    let backend: URL

    var body: some View {
        VStack(alignment: .leading) {
            Text(model.status).font(.caption).foregroundColor(.secondary)
            ScrollView { Text(model.transcript).frame(maxWidth: .infinity, alignment: .leading) }
            HStack {
                TextField("Message", text: $draft)
                Button("Send") {
                    model.send(draft)
                    draft = ""
                }
            }
        }
        .padding()
        .task { await model.start(contextId: contextId, backend: backend) }
        .onChange(of: scenePhase) { phase in model.lifecycle(phase) }
    }
}
