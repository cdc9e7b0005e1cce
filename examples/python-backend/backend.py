"""The two endpoints of the two-endpoint pattern, as a Flask app.

The browser (or any client) never sees the org API key. It asks this backend
to create a context, then, on every (re)connect, for a fresh short-lived
client key scoped to that context. Flask views are synchronous, so this uses
:class:`tokenrelay.BlockingAdminClient`: no event loop needed.

Run it::

    TOKENRELAY_URL=http://127.0.0.1:8080 TOKENRELAY_ORG_KEY=... TOKENRELAY_ORG_ID=... \\
        python examples/python-backend/backend.py
"""

from __future__ import annotations

import os
import threading
from typing import Dict, Optional, Tuple

from flask import Flask, Response, jsonify, request

import tokenrelay

#: A view's answer: a JSON body and a status.
Answer = Tuple[Response, int]


def create_app(
    admin: tokenrelay.BlockingAdminClient,
    org_id: str,
    agent_id: str,
    sessions: Dict[str, str],
) -> Flask:
    """The app. ``sessions`` maps the app's own session tokens to user ids
    (a stand-in for your real authentication)."""
    app = Flask(__name__)
    # Which user created which context: only they get keys for it.
    owners: Dict[str, str] = {}
    lock = threading.Lock()

    def current_user() -> Optional[str]:
        header = request.headers.get("Authorization", "")
        token = header[len("Bearer ") :] if header.startswith("Bearer ") else header
        return sessions.get(token)

    @app.errorhandler(tokenrelay.Error)
    def relay_error(e: tokenrelay.Error) -> Answer:
        # The relay refused or failed: say so without leaking the org key.
        return jsonify(error=e.kind, message=str(e)), 502

    @app.post("/api/create-context")
    def create_context() -> Answer:
        """Endpoint 1: a new context on the app's (non-public) agent."""
        user = current_user()
        if user is None:
            return jsonify(error="unauthenticated"), 401
        context = admin.create_context(agent_id, user_defined={"app_user": user})
        context_id = context.context_id
        with lock:
            owners[context_id] = user
        return jsonify(contextId=context_id), 200

    @app.post("/api/get-client-token")
    def get_client_token() -> Answer:
        """Endpoint 2: a fresh client key, scoped to one context, for a
        user allowed to use it. Called on every (re)connect."""
        user = current_user()
        if user is None:
            return jsonify(error="unauthenticated"), 401
        body = request.get_json(silent=True) or {}
        context_id = body.get("contextId")
        if not isinstance(context_id, str):
            return jsonify(error="contextId required"), 400
        with lock:
            owner = owners.get(context_id)
        if owner != user:
            return jsonify(error="forbidden"), 403
        key = admin.generate_client_key(org_id, context_id=context_id, ttl_seconds=120)
        return jsonify(clientToken=key.token), 200

    return app


def main() -> None:
    """Runs the backend with settings from the environment."""
    admin = tokenrelay.BlockingAdminClient(
        os.environ.get("TOKENRELAY_URL", "http://127.0.0.1:8080"),
        os.environ["TOKENRELAY_ORG_KEY"],
    )
    agent = admin.create_agent("support", "You are a helpful assistant.")
    sessions = {os.environ.get("DEMO_SESSION_TOKEN", "demo-session"): "demo-user"}
    app = create_app(admin, os.environ["TOKENRELAY_ORG_ID"], agent.agent_id, sessions)
    app.run(port=int(os.environ.get("PORT", "5000")))


if __name__ == "__main__":
    main()
