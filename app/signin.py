"""Sign-in (Streamlit's OIDC: st.login, st.user) and the acting identity every page passes to core.

Who may do what is decided in core.access; this module only reads the secrets and the signed-in
person's claims, which Streamlit takes from its signed cookie on the server, and draws the sidebar.
"""

from __future__ import annotations

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError

from core.access import ANONYMOUS, AccessError, AccessSettings, Identity, identify

DEPLOYING = "docs/deploying.md"
LOCAL_NOTE = (
    f"Local run: you are the owner. A public deployment should set `[auth]` and `[access]` in its "
    f"secrets ({DEPLOYING})."
)
DEMO_NOTE = "Read-only demo: draw, predict and look inside; nothing is saved."
ROLE_NAMES = {"owner": "owner", "user": "user", "visitor": "visitor"}


def _secrets() -> dict:
    try:
        return st.secrets.to_dict()
    except (FileNotFoundError, StreamlitSecretNotFoundError):  # no secrets file: a local run
        return {}


def sign_in_on() -> bool:
    """Whether `[auth]` is set: a person who may not do something is then told to sign in."""
    return "auth" in _secrets()


def settings() -> AccessSettings:
    """The roles' settings; AccessError when [access] is malformed."""
    return AccessSettings.from_secrets(_secrets())


def _claims() -> dict | None:
    """The signed-in person's identity claims, or None. Only the claims are read: tokens are not
    exposed (no expose_tokens) and nothing here is ever shown or logged whole."""
    user = st.user.to_dict()
    return user if user.get("is_logged_in") else None


def actor() -> Identity:
    """Who acts in this run. Anything wrong (a malformed [access], an account turned away) makes a
    visitor, who writes nothing; the sidebar says why."""
    try:
        return identify(settings(), _claims())
    except AccessError:
        return ANONYMOUS


def turned_away() -> bool:
    """Signed in with an account the app does not let in (outside the allowed domains, unverified):
    such a person is told so, not asked to sign in."""
    claims = _claims()
    try:
        access = settings()
    except AccessError:  # the settings are wrong, not the account: the sidebar says so
        return False
    if claims is None or not access.sign_in:
        return False
    try:
        identify(access, claims)
    except AccessError:
        return True
    return False


def needs_sign_in(what: str) -> str:
    """Why a visitor may not do `what` ("teach the model this digit"), said to the person who can
    change it: sign in, or (signed in with an account turned away) the sidebar's reason."""
    if turned_away():
        return f"Your account may not {what} here: the sidebar says why."
    return f"Sign in (in the sidebar) to {what}."


def sentence(text: str) -> str:
    """A message as a sentence: a capital first letter (an email stays as written) and a full stop."""
    first = text.split(" ", 1)[0]
    text = text if "@" in first else text[:1].upper() + text[1:]
    return text if text.endswith(".") else f"{text}."


def _providers(auth: dict) -> list[str | None]:
    """st.login's provider names: None for a single provider set in [auth] itself, else the names
    of its [auth.NAME] tables."""
    if "client_id" in auth:
        return [None]
    return [name for name, value in auth.items() if isinstance(value, dict)]


def _sign_in_buttons(auth: dict) -> None:
    for provider in _providers(auth):
        label = "Sign in" if provider is None else f"Sign in with {provider.capitalize()}"
        if st.sidebar.button(label, icon=":material/login:", key=f"sign-in-{provider}"):
            st.login(*filter(None, [provider]))


def _sign_out_button() -> None:
    if st.sidebar.button("Sign out", icon=":material/logout:", key="sign-out"):
        st.logout()


def sidebar() -> Identity:
    """Who is signed in and the buttons to sign in or out; returns the acting identity."""
    try:
        access = settings()
    except AccessError as exc:
        st.sidebar.error(f"The app's access settings are wrong, so nobody may change anything: {exc}.")
        return ANONYMOUS
    if not access.sign_in:
        st.sidebar.caption(DEMO_NOTE if access.demo else LOCAL_NOTE)
        return access.local_role()
    claims = _claims()
    if claims is None:
        st.sidebar.caption("Sign in to teach the model your digits.")
        _sign_in_buttons(_secrets()["auth"])
        return ANONYMOUS
    try:
        who = identify(access, claims)
    except AccessError as exc:
        st.sidebar.error(f"Not signed in: {exc}.")
        _sign_out_button()
        return ANONYMOUS
    name = f"**{who.name}** ({who.email})" if who.name else f"**{who.email}**"
    st.sidebar.caption(f"Signed in as {name} · {ROLE_NAMES[who.role]}")
    _sign_out_button()
    return who
