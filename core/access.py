"""Who may do what: roles from the app's secrets, and the rules every write checks.

The pages build the acting Identity from Streamlit's sign-in (`st.user`, read on the server from its
signed cookie) and the `[access]` secrets; every write in core takes it and asks `require`. Hiding a
button is a courtesy: the refusal happens here. Torch- and Streamlit-free.

Roles, when `[auth]` is configured: a visitor (not signed in) writes nothing; a signed-in user
teaches (their examples record their email), changes only their own examples, and trains only when
`users_may_train`; an owner (listed in `owners`) may do everything. Without `[auth]` (a local run)
the one user is the owner, or a visitor in `mode = "demo"`. The CLI runs on the server: the owner.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.errors import UserError

OWNER, USER, VISITOR = "owner", "user", "visitor"
DEMO_MODE = "demo"
EVERYONE = "*"  # an author filter meaning every author (an email never is "*")


class AccessError(UserError):
    """The acting identity may not do this."""


@dataclass(frozen=True)
class Identity:
    """Who acts: `email` is None for the local user (no sign-in) and for a visitor."""

    role: str
    email: str | None = None
    name: str | None = None
    may_train: bool = False

    @property
    def signed_in(self) -> bool:
        return self.email is not None

    @property
    def owner(self) -> bool:
        return self.role == OWNER

    @property
    def teaches(self) -> bool:
        """May add examples: owners and signed-in users."""
        return self.role in (OWNER, USER)

    def __str__(self) -> str:
        return self.email or ("the local user" if self.owner else "a visitor")


LOCAL = Identity(OWNER, may_train=True)  # a local run's one user, and the CLI
ANONYMOUS = Identity(VISITOR)


@dataclass(frozen=True)
class AccessSettings:
    """The `[auth]` and `[access]` secrets, as far as roles go."""

    sign_in: bool = False  # [auth] is configured
    owners: frozenset[str] = frozenset()
    allowed_domains: tuple[str, ...] = ()
    users_may_train: bool = False
    demo: bool = False

    @classmethod
    def from_secrets(cls, secrets: Mapping) -> AccessSettings:
        """From Streamlit's secrets as a dict (st.secrets.to_dict()); AccessError if malformed."""
        access = secrets.get("access", {})
        if not isinstance(access, Mapping):
            raise AccessError("[access] in the secrets must be a table")
        owners, domains = access.get("owners", []), access.get("allowed_domains", [])
        if not _strings(owners) or not _strings(domains):
            raise AccessError('[access] owners and allowed_domains must be lists of text, e.g. ["a@b.org"]')
        mode = access.get("mode", "")
        if mode not in ("", DEMO_MODE):
            raise AccessError(f'[access] mode must be "{DEMO_MODE}" or left out, not {mode!r}')
        return cls(
            sign_in="auth" in secrets,
            owners=frozenset(email.strip().lower() for email in owners),
            allowed_domains=tuple(domain.strip().lower().lstrip("@") for domain in domains),
            users_may_train=access.get("users_may_train", False) is True,
            demo=mode == DEMO_MODE,
        )

    def local_role(self) -> Identity:
        """Who everyone is when nobody signs in."""
        return ANONYMOUS if self.demo else LOCAL


def _strings(values) -> bool:
    return isinstance(values, list) and all(isinstance(value, str) for value in values)


def identify(settings: AccessSettings, claims: Mapping | None) -> Identity:
    """The acting identity from the sign-in's claims (None: not signed in). AccessError, with a
    message for the person, when a signed-in account may not use the app."""
    if not settings.sign_in:
        return settings.local_role()
    if claims is None:
        return ANONYMOUS
    email = str(claims.get("email") or "").strip().lower()
    if "@" not in email:
        raise AccessError("your account has no email address, which this app needs to know who you are")
    if claims.get("email_verified") is False:
        raise AccessError(f"{email} is not verified by the sign-in provider")
    name = claims.get("name") or None
    if email in settings.owners:
        return Identity(OWNER, email, name, may_train=True)
    if settings.allowed_domains and email.rsplit("@", 1)[1] not in settings.allowed_domains:
        allowed = ", ".join(f"@{domain}" for domain in settings.allowed_domains)
        raise AccessError(f"{email} may not sign in here: this app is for {allowed} accounts")
    return Identity(USER, email, name, may_train=settings.users_may_train)


def require(allowed: bool, actor: Identity, what: str) -> None:
    """Refuse `what` unless `allowed`; the message names who tried."""
    if not allowed:
        raise AccessError(f"{actor} may not {what}")


def require_teacher(actor: Identity) -> None:
    require(actor.teaches, actor, "add examples: sign in first")


def require_owner(actor: Identity, what: str) -> None:
    require(actor.owner, actor, f"{what}: only owners may")


def may_change(actor: Identity, author: str | None) -> bool:
    """Owners change any example; a signed-in user only the ones they added."""
    return actor.owner or (actor.role == USER and author == actor.email)


def require_trainer(actor: Identity) -> None:
    require(actor.may_train, actor, "train models here: the owners have not allowed it")


def may_manage_run(actor: Identity, started_by: Identity) -> bool:
    """Who may stop a training run or cancel a waiting one: the person who asked for it, from any
    session (a reload, a second tab, a new sign-in), and owners, the local user among them."""
    return actor.owner or (actor.signed_in and actor.email == started_by.email)


def visible_author(actor: Identity, whose: str | None) -> str | None:
    """The author filter a listing may use: owners see anyone's (EVERYONE included), a user only
    their own, a visitor nobody's."""
    if actor.owner:
        return whose
    require(actor.role == USER, actor, "see stored examples: sign in first")
    return actor.email
