"""The admin REST client for backends: every route of the server, with an
org API key (or a user's access token / API key). :class:`AdminClient` is
async; :class:`BlockingAdminClient` has the same methods without ``await``
(a Flask or Django view needs no event loop), releasing the GIL while a
request is in flight. Answers are frozen dataclasses of
:mod:`tokenrelay.types` (``.to_dict()`` for plain dicts); failures raise
:class:`tokenrelay.Error` subclasses. A request answered 429 or 5xx is sent
again (``max_retries``, after the answer's ``retry-after``): the rule is the
Rust core's, the same in every SDK."""

# Generated shape: one method per route, the same list in both classes.

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Union

from . import _native
from .types import (
    Agent,
    ChatReply,
    Context,
    CreatedUserApiKey,
    GeneratedApiKey,
    LoginResponse,
    PublishableKey,
    StreamToken,
    User,
    UserApiKey,
)

__all__ = ["AdminClient", "BlockingAdminClient"]

#: Retries of a request answered 429 or 5xx unless ``max_retries`` says
#: otherwise (the core's ``DEFAULT_MAX_RETRIES``; openai-python's default).
DEFAULT_MAX_RETRIES = 2


class _Base:
    _blocking = False

    def __init__(
        self,
        base_url: str,
        api_key: str = "",
        *,
        timeout: Optional[float] = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        root_certificate_pem: Union[str, bytes, None] = None,
        allow_insecure: bool = False,
        proxy: Optional[str] = None,
        no_proxy: bool = False,
    ) -> None:
        """A client of the server at ``base_url`` (``https://host``) sending
        ``api_key`` as a bearer credential.

        Args:
            timeout: seconds for one attempt of a request, connect to last
                byte (default 30). A timeout is not retried.
            max_retries: how many times a request answered 429 or 5xx is
                sent again (default 2; 0 never). Each retry waits for the
                answer's ``retry-after`` (one over 60 s is not waited for:
                the :class:`~tokenrelay.RateLimitedError` is raised, its
                ``retry_after`` set), else 0.5 s, 1 s, 2 s, … (jittered).
            root_certificate_pem: a CA certificate (PEM text, ``str`` or
                ``bytes``) to trust on top of the system's roots. An invalid
                PEM raises :class:`~tokenrelay.ConfigError`.
            allow_insecure: allow ``http://`` to a host that is not loopback
                (default False: :class:`~tokenrelay.ConfigError`).
            proxy: an ``http://[user:pass@]host:port`` proxy for every
                request, whatever the environment says (by default
                ``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY`` and
                ``NO_PROXY`` are followed).
            no_proxy: connect directly, ignoring the proxy variables.
        """
        if not isinstance(base_url, str):
            raise TypeError(f"base_url: expected str, got {type(base_url).__name__}")
        if not isinstance(api_key, str):
            raise TypeError(f"api_key: expected str, got {type(api_key).__name__}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise TypeError(f"max_retries: expected an int >= 0, got {max_retries!r}")
        self._timeout = timeout
        self._max_retries = max_retries
        self._network: Dict[str, Any] = {
            "root_certificate_pem": root_certificate_pem,
            "allow_insecure": bool(allow_insecure),
            "proxy": proxy,
            "no_proxy": bool(no_proxy),
        }
        pem = root_certificate_pem
        if isinstance(pem, str):
            pem = pem.encode("utf-8")
        elif pem is not None and not isinstance(pem, bytes):
            raise TypeError(f"root_certificate_pem: expected str or bytes, got {type(pem).__name__}")
        self._native = _native.NativeAdmin(
            base_url,
            api_key,
            blocking=self._blocking,
            timeout=timeout,
            max_retries=max_retries,
            root_certificate_pem=pem,
            allow_insecure=bool(allow_insecure),
            proxy=proxy,
            no_proxy=bool(no_proxy),
        )

    @property
    def base_url(self) -> str:
        """The server's base URL."""
        return self._native.base_url

    @property
    def max_retries(self) -> int:
        """How many times a 429 or 5xx answer is retried."""
        return self._max_retries

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"


class AdminClient(_Base):
    """Async admin REST client (``await`` every method)."""

    _blocking = False

    def with_credential(self, api_key: str) -> "AdminClient":
        """The same server, timeout and retries with another credential (say, the ``access_token`` of :meth:`login`)."""
        return AdminClient(
            self.base_url, api_key, timeout=self._timeout, max_retries=self._max_retries, **self._network
        )

    async def create_agent(self, agent_name: str, prompt: str, *, agent_description: Optional[str] = None, is_public: Optional[bool] = None, agent_speaks_first: Optional[bool] = None, tools: Optional[List[Any]] = None) -> Agent:
        """``POST /agent``: creates an agent; returns it."""
        return Agent._from_json(await self._native.create_agent(agent_name, prompt, agent_description=agent_description, is_public=is_public, agent_speaks_first=agent_speaks_first, tools=tools))

    async def get_agent(self, agent_id: str) -> Agent:
        """``GET /agent/{id}``."""
        return Agent._from_json(await self._native.get_agent(agent_id))

    async def list_agents(self) -> List[Agent]:
        """``GET /agents``: the agents the caller may see."""
        return [Agent._from_json(x) for x in await self._native.list_agents()]

    async def delete_agent(self, agent_id: str) -> None:
        """``DELETE /agent/{id}``."""
        await self._native.delete_agent(agent_id)

    async def create_context(self, agent_id: str, *, invoke_agent_message: Optional[bool] = None, prompt_args: Optional[Dict[str, Any]] = None, user_defined: Optional[Dict[str, Any]] = None) -> Context:
        """``POST /context``: a conversation context on ``agent_id``; returns it (``context_id``, …)."""
        return Context._from_json(await self._native.create_context(agent_id, invoke_agent_message=invoke_agent_message, prompt_args=prompt_args, user_defined=user_defined))

    async def get_context(self, context_id: str) -> Context:
        """``GET /context/{id}``: the context and its messages."""
        return Context._from_json(await self._native.get_context(context_id))

    async def delete_context(self, context_id: str) -> None:
        """``DELETE /context/{id}``."""
        await self._native.delete_context(context_id)

    async def chat(self, context_id: str, message: str) -> ChatReply:
        """``POST /chat``: the finished reply, non-streaming."""
        return ChatReply._from_json(await self._native.chat(context_id, message))

    async def generate_api_key(self, org_id: str, type: str, *, context_id: Optional[str] = None, ttl_seconds: Optional[int] = None) -> GeneratedApiKey:
        """``POST /generate-api-key``: an org or client key (``type`` is ``"client"`` or ``"org"``)."""
        return GeneratedApiKey._from_json(await self._native.generate_api_key(org_id, type, context_id=context_id, ttl_seconds=ttl_seconds))

    async def generate_client_key(self, org_id: str, *, context_id: Optional[str] = None, ttl_seconds: Optional[int] = None) -> GeneratedApiKey:
        """A client key of ``org_id`` for a browser, scoped to ``context_id`` when given; its ``token`` is what a token provider returns."""
        return GeneratedApiKey._from_json(await self._native.generate_client_key(org_id, context_id=context_id, ttl_seconds=ttl_seconds))

    async def register(self, username: str, password: str) -> User:
        """``POST /auth/register``: a new user."""
        return User._from_json(await self._native.register(username, password))

    async def login(self, username: str, password: str) -> LoginResponse:
        """``POST /auth/login``: ``{access_token, token_type, expires_in, user}``."""
        return LoginResponse._from_json(await self._native.login(username, password))

    async def me(self) -> User:
        """``GET /auth/me``: the user of the credential."""
        return User._from_json(await self._native.me())

    async def create_user_api_key(self, nickname: str) -> CreatedUserApiKey:
        """``POST /auth/api-keys``: a user API key; its ``key`` is shown this once."""
        return CreatedUserApiKey._from_json(await self._native.create_user_api_key(nickname))

    async def list_user_api_keys(self) -> List[UserApiKey]:
        """``GET /auth/api-keys``: the user's keys (never the secrets)."""
        return [UserApiKey._from_json(x) for x in await self._native.list_user_api_keys()]

    async def delete_user_api_key(self, key_id: str) -> None:
        """``DELETE /auth/api-keys/{id}``: the key stops working at once."""
        await self._native.delete_user_api_key(key_id)

    async def stream_token(self, ttl: Optional[int] = None) -> StreamToken:
        """``GET /api/v1/token``: a single-use stream token ``{token, ttl, rate_limit}``."""
        return StreamToken._from_json(await self._native.stream_token(ttl))

    async def create_client_key(self, allowed_origins: Sequence[str]) -> PublishableKey:
        """``POST /client-key``: creates or rotates the org's publishable key."""
        return PublishableKey._from_json(await self._native.create_client_key(list(allowed_origins)))

    async def delete_client_key(self) -> None:
        """``DELETE /client-key``: revokes the org's publishable key."""
        await self._native.delete_client_key()


class BlockingAdminClient(_Base):
    """Blocking admin REST client: the same methods as :class:`AdminClient`, without ``await``."""

    _blocking = True

    def with_credential(self, api_key: str) -> "BlockingAdminClient":
        """The same server, timeout and retries with another credential (say, the ``access_token`` of :meth:`login`)."""
        return BlockingAdminClient(
            self.base_url, api_key, timeout=self._timeout, max_retries=self._max_retries, **self._network
        )

    def create_agent(self, agent_name: str, prompt: str, *, agent_description: Optional[str] = None, is_public: Optional[bool] = None, agent_speaks_first: Optional[bool] = None, tools: Optional[List[Any]] = None) -> Agent:
        """``POST /agent``: creates an agent; returns it."""
        return Agent._from_json(self._native.create_agent(agent_name, prompt, agent_description=agent_description, is_public=is_public, agent_speaks_first=agent_speaks_first, tools=tools))

    def get_agent(self, agent_id: str) -> Agent:
        """``GET /agent/{id}``."""
        return Agent._from_json(self._native.get_agent(agent_id))

    def list_agents(self) -> List[Agent]:
        """``GET /agents``: the agents the caller may see."""
        return [Agent._from_json(x) for x in self._native.list_agents()]

    def delete_agent(self, agent_id: str) -> None:
        """``DELETE /agent/{id}``."""
        self._native.delete_agent(agent_id)

    def create_context(self, agent_id: str, *, invoke_agent_message: Optional[bool] = None, prompt_args: Optional[Dict[str, Any]] = None, user_defined: Optional[Dict[str, Any]] = None) -> Context:
        """``POST /context``: a conversation context on ``agent_id``; returns it (``context_id``, …)."""
        return Context._from_json(self._native.create_context(agent_id, invoke_agent_message=invoke_agent_message, prompt_args=prompt_args, user_defined=user_defined))

    def get_context(self, context_id: str) -> Context:
        """``GET /context/{id}``: the context and its messages."""
        return Context._from_json(self._native.get_context(context_id))

    def delete_context(self, context_id: str) -> None:
        """``DELETE /context/{id}``."""
        self._native.delete_context(context_id)

    def chat(self, context_id: str, message: str) -> ChatReply:
        """``POST /chat``: the finished reply, non-streaming."""
        return ChatReply._from_json(self._native.chat(context_id, message))

    def generate_api_key(self, org_id: str, type: str, *, context_id: Optional[str] = None, ttl_seconds: Optional[int] = None) -> GeneratedApiKey:
        """``POST /generate-api-key``: an org or client key (``type`` is ``"client"`` or ``"org"``)."""
        return GeneratedApiKey._from_json(self._native.generate_api_key(org_id, type, context_id=context_id, ttl_seconds=ttl_seconds))

    def generate_client_key(self, org_id: str, *, context_id: Optional[str] = None, ttl_seconds: Optional[int] = None) -> GeneratedApiKey:
        """A client key of ``org_id`` for a browser, scoped to ``context_id`` when given; its ``token`` is what a token provider returns."""
        return GeneratedApiKey._from_json(self._native.generate_client_key(org_id, context_id=context_id, ttl_seconds=ttl_seconds))

    def register(self, username: str, password: str) -> User:
        """``POST /auth/register``: a new user."""
        return User._from_json(self._native.register(username, password))

    def login(self, username: str, password: str) -> LoginResponse:
        """``POST /auth/login``: ``{access_token, token_type, expires_in, user}``."""
        return LoginResponse._from_json(self._native.login(username, password))

    def me(self) -> User:
        """``GET /auth/me``: the user of the credential."""
        return User._from_json(self._native.me())

    def create_user_api_key(self, nickname: str) -> CreatedUserApiKey:
        """``POST /auth/api-keys``: a user API key; its ``key`` is shown this once."""
        return CreatedUserApiKey._from_json(self._native.create_user_api_key(nickname))

    def list_user_api_keys(self) -> List[UserApiKey]:
        """``GET /auth/api-keys``: the user's keys (never the secrets)."""
        return [UserApiKey._from_json(x) for x in self._native.list_user_api_keys()]

    def delete_user_api_key(self, key_id: str) -> None:
        """``DELETE /auth/api-keys/{id}``: the key stops working at once."""
        self._native.delete_user_api_key(key_id)

    def stream_token(self, ttl: Optional[int] = None) -> StreamToken:
        """``GET /api/v1/token``: a single-use stream token ``{token, ttl, rate_limit}``."""
        return StreamToken._from_json(self._native.stream_token(ttl))

    def create_client_key(self, allowed_origins: Sequence[str]) -> PublishableKey:
        """``POST /client-key``: creates or rotates the org's publishable key."""
        return PublishableKey._from_json(self._native.create_client_key(list(allowed_origins)))

    def delete_client_key(self) -> None:
        """``DELETE /client-key``: revokes the org's publishable key."""
        self._native.delete_client_key()
