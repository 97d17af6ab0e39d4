"""The people allowed to call the endpoint: one way to add, find and list them.

The ``users`` commands, the demo, the endpoint's lookup and the tests all come through here, so
an e-mail or a customer id is checked the same way wherever a user is made.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select, update

from checkout_sweeper.errors import DuplicateRow, UserError
from checkout_sweeper.store.database import Database
from checkout_sweeper.store.models import SweepRun, User, UserShown

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CUSTOMER_ID = re.compile(r"^cus_\w+$")
TAKEN = (
    "a user with that e-mail (in any case) or Stripe customer id already exists; nothing was added"
)


def check_email(email: str) -> str:
    email = email.strip()
    if not EMAIL.match(email):
        raise UserError(f"not an e-mail address: {email!r}", field="email")
    return email


def check_customer_id(customer_id: str | None) -> str | None:
    if customer_id is not None and not CUSTOMER_ID.match(customer_id):
        raise UserError(
            f"a Stripe customer id looks like cus_..., got {customer_id!r}",
            field="stripe_customer_id",
        )
    return customer_id


def add_user(db: Database, email: str, stripe_customer_id: str | None = None) -> UserShown:
    """Store a new user and return it as a dict; ``UserError`` if invalid or taken."""
    email = check_email(email)
    stripe_customer_id = check_customer_id(stripe_customer_id)
    try:
        with db.session() as session:
            same = select(User.id).where(func.lower(User.email) == email.lower())
            if session.scalar(same) is not None:  # the index says so too, at the same moment
                raise UserError(TAKEN)
            user = User(email=email, stripe_customer_id=stripe_customer_id)
            session.add(user)
            session.flush()
            return user.as_dict()
    except DuplicateRow:
        raise UserError(TAKEN) from None


def find_user(db: Database, user_id: int) -> User | None:
    with db.session() as session:
        return session.get(User, user_id)


def list_users(db: Database) -> list[UserShown]:
    with db.session() as session:
        return [u.as_dict() for u in session.scalars(select(User).order_by(User.id))]


def remove_user(db: Database, user_id: int, *, force: bool = False) -> int:
    """Delete a user; return how many sweeps they started. Refused (``UserError``) when they
    started any, unless ``force``: the sweeps and their records stay, without the user."""
    with db.session() as session:
        user = session.get(User, user_id)
        if user is None:
            raise UserError(f"no user {user_id}", field="id")
        sweeps = session.scalar(
            select(func.count()).select_from(SweepRun).where(SweepRun.user_id == user_id)
        )
        if sweeps and not force:
            raise UserError(
                f"user {user_id} started {sweeps} sweep(s) on record; add --force to remove the "
                "user anyway (the sweeps and their records are kept)"
            )
        session.execute(
            update(SweepRun)
            .where(SweepRun.user_id == user_id)
            .values(user_id=None, removed_user_id=user.id, removed_user_email=user.email)
        )
        session.delete(user)
        return int(sweeps or 0)
