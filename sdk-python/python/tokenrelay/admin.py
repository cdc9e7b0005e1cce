"""The admin REST client for backends: every route of the server, with an
org API key (or a user's access token / API key). :class:`AdminClient` is
async; :class:`BlockingAdminClient` has the same methods without ``await``
(a Flask or Django view needs no event loop), releasing the GIL while a
request is in flight. Answers are the server's JSON as dicts; failures raise
:class:`tokenrelay.Error` subclasses."""

# Generated shape: one method per route, the same list in both classes.

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from . import _native

__all__ = ["AdminClient", "BlockingAdminClient"]


class _Base:
    _blocking = False

    def __init__(self, base_url: str, api_key: str = "", *, timeout: Optional[float] = None) -> None:
        """A client of the server at ``base_url`` (``https://host``) sending
        ``api_key`` as a bearer credential; ``timeout`` in seconds."""
        if not isinstance(base_url, str):
            raise TypeError(f"base_url: expected str, got {type(base_url).__name__}")
        if not isinstance(api_key, str):
            raise TypeError(f"api_key: expected str, got {type(api_key).__name__}")
        self._timeout = timeout
        self._native = _native.NativeAdmin(base_url, api_key, blocking=self._blocking, timeout=timeout)

    @property
    def base_url(self) -> str:
        """The server's base URL."""
        return self._native.base_url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

class AdminClient(_Base):
    """Async admin REST client (``await`` every method)."""

    _blocking = False

    def with_credential(self, api_key: str) -> "AdminClient":
        """The same server and timeout with another credential (say, the ``access_token`` of :meth:`login`)."""
        return AdminClient(self.base_url, api_key, timeout=self._timeout)

    async def create_agent(self, agent_name: str, prompt: str, *, agent_description: Optional[str] = None, is_public: Optional[bool] = None, agent_speaks_first: Optional[bool] = None, tools: Optional[List[Any]] = None) -> Dict[str, Any]:
        """``POST /agent``: creates an agent; returns it."""
        return await self._native.create_agent(agent_name, prompt, agent_description=agent_description, is_public=is_public, agent_speaks_first=agent_speaks_first, tools=tools)  # type: ignore[no-any-return]

    async def get_agent(self, agent_id: str) -> Dict[str, Any]:
        """``GET /agent/{id}``."""
        return await self._native.get_agent(agent_id)  # type: ignore[no-any-return]

    async def list_agents(self) -> List[Dict[str, Any]]:
        """``GET /agents``: the agents the caller may see."""
        return await self._native.list_agents()  # type: ignore[no-any-return]

    async def delete_agent(self, agent_id: str) -> None:
        """``DELETE /agent/{id}``."""
        return await self._native.delete_agent(agent_id)  # type: ignore[no-any-return]

    async def create_context(self, agent_id: str, *, invoke_agent_message: Optional[bool] = None, prompt_args: Optional[Dict[str, Any]] = None, user_defined: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """``POST /context``: a conversation context on ``agent_id``; returns it (``context_id``, …)."""
        return await self._native.create_context(agent_id, invoke_agent_message=invoke_agent_message, prompt_args=prompt_args, user_defined=user_defined)  # type: ignore[no-any-return]

    async def get_context(self, context_id: str) -> Dict[str, Any]:
        """``GET /context/{id}``: the context and its messages."""
        return await self._native.get_context(context_id)  # type: ignore[no-any-return]

    async def delete_context(self, context_id: str) -> None:
        """``DELETE /context/{id}``."""
        return await self._native.delete_context(context_id)  # type: ignore[no-any-return]

    async def chat(self, context_id: str, message: str) -> Dict[str, Any]:
        """``POST /chat``: the finished reply, non-streaming."""
        return await self._native.chat(context_id, message)  # type: ignore[no-any-return]

    async def generate_api_key(self, org_id: str, type: str, *, context_id: Optional[str] = None, ttl_seconds: Optional[int] = None) -> Dict[str, Any]:
        """``POST /generate-api-key``: an org or client key (``type`` is ``"client"`` or ``"org"``)."""
        return await self._native.generate_api_key(org_id, type, context_id=context_id, ttl_seconds=ttl_seconds)  # type: ignore[no-any-return]

    async def generate_client_key(self, org_id: str, *, context_id: Optional[str] = None, ttl_seconds: Optional[int] = None) -> Dict[str, Any]:
        """A client key of ``org_id`` for a browser, scoped to ``context_id`` when given; its ``token`` is what a token provider returns."""
        return await self._native.generate_client_key(org_id, context_id=context_id, ttl_seconds=ttl_seconds)  # type: ignore[no-any-return]

    async def register(self, username: str, password: str) -> Dict[str, Any]:
        """``POST /auth/register``: a new user."""
        return await self._native.register(username, password)  # type: ignore[no-any-return]

    async def login(self, username: str, password: str) -> Dict[str, Any]:
        """``POST /auth/login``: ``{access_token, token_type, expires_in, user}``."""
        return await self._native.login(username, password)  # type: ignore[no-any-return]

    async def me(self) -> Dict[str, Any]:
        """``GET /auth/me``: the user of the credential."""
        return await self._native.me()  # type: ignore[no-any-return]

    async def create_user_api_key(self, nickname: str) -> Dict[str, Any]:
        """``POST /auth/api-keys``: a user API key; its ``key`` is shown this once."""
        return await self._native.create_user_api_key(nickname)  # type: ignore[no-any-return]

    async def list_user_api_keys(self) -> List[Dict[str, Any]]:
        """``GET /auth/api-keys``: the user's keys (never the secrets)."""
        return await self._native.list_user_api_keys()  # type: ignore[no-any-return]

    async def delete_user_api_key(self, key_id: str) -> None:
        """``DELETE /auth/api-keys/{id}``: the key stops working at once."""
        return await self._native.delete_user_api_key(key_id)  # type: ignore[no-any-return]

    async def stream_token(self, ttl: Optional[int] = None) -> Dict[str, Any]:
        """``GET /api/v1/token``: a single-use stream token ``{token, ttl, rate_limit}``."""
        return await self._native.stream_token(ttl)  # type: ignore[no-any-return]

    async def create_client_key(self, allowed_origins: Sequence[str]) -> Dict[str, Any]:
        """``POST /client-key``: creates or rotates the org's publishable key."""
        return await self._native.create_client_key(list(allowed_origins))  # type: ignore[no-any-return]

    async def delete_client_key(self) -> None:
        """``DELETE /client-key``: revokes the org's publishable key."""
        return await self._native.delete_client_key()  # type: ignore[no-any-return]

class BlockingAdminClient(_Base):
    """Blocking admin REST client: the same methods as :class:`AdminClient`, without ``await``."""

    _blocking = True

    def with_credential(self, api_key: str) -> "BlockingAdminClient":
        """The same server and timeout with another credential (say, the ``access_token`` of :meth:`login`)."""
        return BlockingAdminClient(self.base_url, api_key, timeout=self._timeout)

    def create_agent(self, agent_name: str, prompt: str, *, agent_description: Optional[str] = None, is_public: Optional[bool] = None, agent_speaks_first: Optional[bool] = None, tools: Optional[List[Any]] = None) -> Dict[str, Any]:
        """``POST /agent``: creates an agent; returns it."""
        return self._native.create_agent(agent_name, prompt, agent_description=agent_description, is_public=is_public, agent_speaks_first=agent_speaks_first, tools=tools)  # type: ignore[no-any-return]

    def get_agent(self, agent_id: str) -> Dict[str, Any]:
        """``GET /agent/{id}``."""
        return self._native.get_agent(agent_id)  # type: ignore[no-any-return]

    def list_agents(self) -> List[Dict[str, Any]]:
        """``GET /agents``: the agents the caller may see."""
        return self._native.list_agents()  # type: ignore[no-any-return]

    def delete_agent(self, agent_id: str) -> None:
        """``DELETE /agent/{id}``."""
        return self._native.delete_agent(agent_id)  # type: ignore[no-any-return]

    def create_context(self, agent_id: str, *, invoke_agent_message: Optional[bool] = None, prompt_args: Optional[Dict[str, Any]] = None, user_defined: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """``POST /context``: a conversation context on ``agent_id``; returns it (``context_id``, …)."""
        return self._native.create_context(agent_id, invoke_agent_message=invoke_agent_message, prompt_args=prompt_args, user_defined=user_defined)  # type: ignore[no-any-return]

    def get_context(self, context_id: str) -> Dict[str, Any]:
        """``GET /context/{id}``: the context and its messages."""
        return self._native.get_context(context_id)  # type: ignore[no-any-return]

    def delete_context(self, context_id: str) -> None:
        """``DELETE /context/{id}``."""
        return self._native.delete_context(context_id)  # type: ignore[no-any-return]

    def chat(self, context_id: str, message: str) -> Dict[str, Any]:
        """``POST /chat``: the finished reply, non-streaming."""
        return self._native.chat(context_id, message)  # type: ignore[no-any-return]

    def generate_api_key(self, org_id: str, type: str, *, context_id: Optional[str] = None, ttl_seconds: Optional[int] = None) -> Dict[str, Any]:
        """``POST /generate-api-key``: an org or client key (``type`` is ``"client"`` or ``"org"``)."""
        return self._native.generate_api_key(org_id, type, context_id=context_id, ttl_seconds=ttl_seconds)  # type: ignore[no-any-return]

    def generate_client_key(self, org_id: str, *, context_id: Optional[str] = None, ttl_seconds: Optional[int] = None) -> Dict[str, Any]:
        """A client key of ``org_id`` for a browser, scoped to ``context_id`` when given; its ``token`` is what a token provider returns."""
        return self._native.generate_client_key(org_id, context_id=context_id, ttl_seconds=ttl_seconds)  # type: ignore[no-any-return]

    def register(self, username: str, password: str) -> Dict[str, Any]:
        """``POST /auth/register``: a new user."""
        return self._native.register(username, password)  # type: ignore[no-any-return]

    def login(self, username: str, password: str) -> Dict[str, Any]:
        """``POST /auth/login``: ``{access_token, token_type, expires_in, user}``."""
        return self._native.login(username, password)  # type: ignore[no-any-return]

    def me(self) -> Dict[str, Any]:
        """``GET /auth/me``: the user of the credential."""
        return self._native.me()  # type: ignore[no-any-return]

    def create_user_api_key(self, nickname: str) -> Dict[str, Any]:
        """``POST /auth/api-keys``: a user API key; its ``key`` is shown this once."""
        return self._native.create_user_api_key(nickname)  # type: ignore[no-any-return]

    def list_user_api_keys(self) -> List[Dict[str, Any]]:
        """``GET /auth/api-keys``: the user's keys (never the secrets)."""
        return self._native.list_user_api_keys()  # type: ignore[no-any-return]

    def delete_user_api_key(self, key_id: str) -> None:
        """``DELETE /auth/api-keys/{id}``: the key stops working at once."""
        return self._native.delete_user_api_key(key_id)  # type: ignore[no-any-return]

    def stream_token(self, ttl: Optional[int] = None) -> Dict[str, Any]:
        """``GET /api/v1/token``: a single-use stream token ``{token, ttl, rate_limit}``."""
        return self._native.stream_token(ttl)  # type: ignore[no-any-return]

    def create_client_key(self, allowed_origins: Sequence[str]) -> Dict[str, Any]:
        """``POST /client-key``: creates or rotates the org's publishable key."""
        return self._native.create_client_key(list(allowed_origins))  # type: ignore[no-any-return]

    def delete_client_key(self) -> None:
        """``DELETE /client-key``: revokes the org's publishable key."""
        return self._native.delete_client_key()  # type: ignore[no-any-return]
