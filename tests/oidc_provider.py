"""A real OpenID provider for the single sign-on tests: ``oidc-provider`` (panva's OpenID Certified
implementation, from the npm registry; ``scripts/setup`` installs it into tests/sso/provider) run by Node on
loopback, behind a small forwarding proxy of the test's own.

The provider's issuer is the proxy's address, so the console and the browser reach the provider through
it and see exactly what the provider says, unless a test sets :attr:`OidcProvider.tamper`: then the ID
token of the next token answers is rewritten (its claims or header changed, and signed again with the
provider's own key, another key or none), as an attacker between the two, or a provider gone wrong,
would. The provider's signing key is made here, so the test holds it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.deployment import free_port

PROVIDER_DIR = Path(__file__).parent / "sso" / "provider"
CLIENT_ID = "spendstream-console"
CLIENT_SECRET = "a-client-secret-only-the-test-knows"

# (header, claims) -> (header, claims, key to sign with; None: alg none, no signature), or the token itself
Tamper = Callable[[dict[str, Any], dict[str, Any]], tuple[dict[str, Any], dict[str, Any], RSAKey | None] | str]


def new_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


def _part(value: dict[str, Any] | bytes) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A JWT with ``alg: none`` and no signature, which no library here would make."""
    return f"{_part({**header, 'alg': 'none'})}.{_part(claims)}."


def hmac_signed(secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """HS256 with ``secret``: given a provider's public key, the classic algorithm-confusion forgery (joserfc
    refuses to use a public key as an HMAC secret, so it is made by hand)."""
    head = f"{_part({**header, 'alg': 'HS256'})}.{_part(claims)}"
    return f"{head}.{_part(hmac.new(secret, head.encode(), hashlib.sha256).digest())}"


@dataclass
class OidcProvider:
    issuer: str
    redirect_uri: str
    post_logout_uri: str
    home: Path
    keys: list[RSAKey]
    accounts: dict[str, dict[str, Any]]
    tamper: Tamper | None = None
    proc: subprocess.Popen[bytes] | None = None
    upstream: str = ""
    tampered: list[str] = field(default_factory=list)  # the ID tokens the proxy rewrote

    def set_accounts(self, accounts: dict[str, dict[str, Any]]) -> None:
        """The provider reads them again at every sign-in: a group taken away takes effect there."""
        self.accounts = accounts
        (self.home / "accounts.json").write_text(json.dumps(accounts))

    def start(self) -> None:
        port = free_port()
        self.upstream = f"http://127.0.0.1:{port}"
        config = {
            "port": port,
            "issuer": self.issuer,
            "accounts": str(self.home / "accounts.json"),
            "jwks": {"keys": [k.as_dict(private=True) for k in self.keys]},
            "clients": [
                {
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "redirect_uris": [self.redirect_uri],
                    "post_logout_redirect_uris": [self.post_logout_uri],
                    "token_endpoint_auth_method": "client_secret_basic",
                }
            ],
        }
        (self.home / "config.json").write_text(json.dumps(config))
        self.set_accounts(self.accounts)
        log = open(self.home / "provider.log", "ab")  # noqa: SIM115 - the process keeps it
        node = shutil.which("node") or "node"
        self.proc = subprocess.Popen(
            [node, str(PROVIDER_DIR / "provider.mjs"), str(self.home / "config.json")], stdout=log, stderr=log
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.upstream + "/.well-known/openid-configuration", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None and time.monotonic() < deadline, (self.home / "provider.log").read_text()
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def rotate(self, key: RSAKey) -> None:
        """Restart the provider signing with ``key`` first (the old keys still published)."""
        self.stop()
        self.keys = [key, *self.keys]
        self.start()

    def rewrite(self, token: str) -> str:
        if self.tamper is None:
            return token
        decoded = jwt.decode(token, self.keys[0])  # the provider's own: the proxy reads it as the console would
        made = self.tamper(dict(decoded.header), dict(decoded.claims))
        if isinstance(made, str):
            out = made
        else:
            header, claims, key = made
            out = unsigned(header, claims) if key is None else jwt.encode(header, claims, key)
        self.tampered.append(out)
        return out


def _handler(provider: OidcProvider) -> type[BaseHTTPRequestHandler]:
    class Forward(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            skip = {"host", "content-length", "connection", "accept-encoding"}
            headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
            headers["host"] = self.headers.get("host", "")
            answer = httpx.request(
                self.command, provider.upstream + self.path, headers=headers, content=body, timeout=30
            )
            content = answer.content
            if self.path.startswith("/token") and answer.status_code == 200:
                data = answer.json()
                if "id_token" in data:
                    data["id_token"] = provider.rewrite(data["id_token"])
                content = json.dumps(data).encode()
            self.send_response(answer.status_code)
            for key, value in answer.headers.multi_items():
                if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                    self.send_header(key, value)
            self.send_header("content-length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = _forward

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Forward


@contextmanager
def oidc_provider(
    home: Path, redirect_uri: str, post_logout_uri: str, accounts: dict[str, dict[str, Any]]
) -> Iterator[OidcProvider]:
    port = free_port()
    provider = OidcProvider(f"http://127.0.0.1:{port}", redirect_uri, post_logout_uri, home, [new_key("k1")], accounts)
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(provider))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()
        server.shutdown()
        server.server_close()


def provider_sign_in(client: httpx.Client, start: str, login: str) -> httpx.Response:
    """Follow the console's redirect to the provider and sign in on its own login page (as a browser posts
    its forms), up to the provider's redirect back to the console; returns that redirect (not followed)."""
    answer = client.get(start)
    for _ in range(20):
        location = answer.headers.get("location")
        if answer.status_code in (302, 303) and location:
            target = urljoin(str(answer.url), location)
            if "/login/sso/callback" in target:
                return answer
            answer = client.get(target)
            continue
        assert answer.status_code == 200, answer.text
        page = answer.text
        action = page.split('action="', 1)[1].split('"', 1)[0]
        fields = dict(
            (
                part.split('name="', 1)[1].split('"', 1)[0],
                part.split('value="', 1)[1].split('"', 1)[0] if 'value="' in part else "",
            )
            for part in page.split("<input")[1:]
            if 'name="' in part
        )
        fields.update({"login": login, "password": "any password: the test provider's login page takes it"})
        answer = client.post(urljoin(str(answer.url), action), data=fields)
    raise AssertionError("the provider never sent the browser back to the console")
