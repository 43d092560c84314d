"""Identity rules: roles, credentials, KYC and dealer applications (seed 004)."""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from email_validator import EmailNotValidError, validate_email

from forecourt.domain.common_passwords import COMMON_PASSWORDS
from forecourt.domain.errors import DomainError, Validator
from forecourt.domain.text import clean_text

PASSWORD_MIN_LENGTH = 8
# argon2 hashes whatever it is given; a cap keeps a hostile 1 MB password from costing CPU.
PASSWORD_MAX_LENGTH = 256
# Code points a password may not contain: controls, format characters (zero-width spaces and
# joiners, direction marks), surrogates, private-use and unassigned code points, line and
# paragraph separators. They are invisible, or look different from one device to the next, so
# they pad a password's length without adding anything a person could type again.
PASSWORD_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# "Password123!" is "password" to a guesser: a common password with digits and symbols
# appended is common too, when what is left is this long.
COMMON_STEM_MIN_LENGTH = 4
_TRAILING_DIGITS_AND_SYMBOLS = re.compile(r"[\W\d_]+$")
EMAIL_MAX_LENGTH = 254
DISPLAY_NAME_MAX_LENGTH = 100
_PHONE = re.compile(r"^\+[1-9][0-9]{7,14}$")


class Role(enum.StrEnum):
    """Platform roles. A caller with no credentials is a guest and has no Role."""

    USER = "user"
    VERIFIED_SELLER = "verified_seller"
    DEALER = "dealer"
    CONCIERGE = "concierge"
    MANAGER = "manager"
    ADMIN = "admin"


# Staff act on others' behalf (cancel any auction, see reserves and bidders). Not concierges:
# seed 004 gives them messages and tasks, and no auction rights ("POST /api/auctions" ❌).
STAFF_ROLES = frozenset({Role.MANAGER, Role.ADMIN})

# Roles whose holders must have passed KYC (seed 004: "User cannot have role changed to
# 'dealer' without kyc_status = 'approved'"; verified sellers are verified by definition).
KYC_GATED_ROLES = frozenset({Role.DEALER, Role.VERIFIED_SELLER})


class KycStatus(enum.StrEnum):
    NONE = "none"
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class KycKind(enum.StrEnum):
    BIDDER = "bidder"  # identity check to take part in auctions
    DEALER = "dealer"  # business verification; approval makes the user a dealer


def normalize_email(email: str | None, field: str = "email") -> str:
    if email is None or not email.strip():
        raise DomainError("REQUIRED", "email is required", (field,))
    if len(email) > EMAIL_MAX_LENGTH:
        raise DomainError(
            "INVALID_EMAIL", f"email must be at most {EMAIL_MAX_LENGTH} characters", (field,)
        )
    try:
        result = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as err:
        raise DomainError("INVALID_EMAIL", f"email is not valid: {err}", (field,)) from None
    return result.normalized.lower()


def normalize_password(password: str) -> str:
    """NFKC: one password however it was typed (composed or decomposed accents, full-width
    forms, non-breaking spaces). Registration and sign-in both hash this form."""
    return unicodedata.normalize("NFKC", password)


def is_common_password(password: str) -> bool:
    lowered = password.casefold()
    stem = _TRAILING_DIGITS_AND_SYMBOLS.sub("", lowered)
    return lowered in COMMON_PASSWORDS or (len(stem) >= COMMON_STEM_MIN_LENGTH and stem in COMMON_PASSWORDS)


def check_password(password: str | None, field: str = "password") -> str:
    """Seed 004: at least 8 characters, one upper-case letter and one digit — counted on the
    NFKC form, over visible characters (spaces are allowed but do not count); invisible and
    control characters are refused, and so are common passwords. Returns the NFKC form: the
    password to hash."""
    if not password:
        raise DomainError("REQUIRED", "password is required", (field,))
    too_long = DomainError(
        "PASSWORD_TOO_LONG", f"password must be at most {PASSWORD_MAX_LENGTH} characters", (field,))
    if len(password) > PASSWORD_MAX_LENGTH:  # before normalising: a hostile input costs nothing
        raise too_long
    password = normalize_password(password)
    if len(password) > PASSWORD_MAX_LENGTH:  # NFKC may lengthen it (a ligature becomes letters)
        raise too_long
    if any(unicodedata.category(c) in PASSWORD_REFUSED_CATEGORIES for c in password):
        raise DomainError(
            "INVALID_CHARACTERS", "password contains invisible or control characters", (field,))
    visible = sum(not c.isspace() for c in password)
    if (
        visible < PASSWORD_MIN_LENGTH
        or not any(c.isupper() for c in password)
        or not any(c.isdigit() for c in password)
    ):
        raise DomainError(
            "WEAK_PASSWORD",
            f"password must have at least {PASSWORD_MIN_LENGTH} visible characters, "
            "one upper-case letter and one digit",
            (field,),
        )
    if is_common_password(password):
        raise DomainError(
            "COMMON_PASSWORD", "this password is among the most common ones; choose another", (field,))
    return password


def normalize_phone(phone: str | None, field: str = "phone") -> str | None:
    """E.164: a plus sign and 8 to 15 digits; spaces, dashes and brackets are ignored."""
    if phone is None or not phone.strip():
        return None
    if len(phone) > 32:
        raise DomainError("INVALID_PHONE", "phone must be at most 32 characters", (field,))
    compact = re.sub(r"[\s\-()]", "", phone)
    if not _PHONE.match(compact):
        raise DomainError(
            "INVALID_PHONE", "phone must be in international format, e.g. +2348012345678", (field,)
        )
    return compact


@dataclass(frozen=True)
class Registration:
    email: str
    password: str
    display_name: str | None
    phone: str | None


def validate_registration(
    email: str | None, password: str | None, display_name: str | None, phone: str | None
) -> Registration:
    v = Validator()
    email_n = v.run(normalize_email, email)
    password_n = v.run(check_password, password)
    name = v.run(
        clean_text, display_name, "displayName", max_length=DISPLAY_NAME_MAX_LENGTH, name=True
    )
    phone_n = v.run(normalize_phone, phone)
    v.check()
    return Registration(email_n, password_n, name, phone_n)  # type: ignore[arg-type]


def check_role_kyc(role: Role, kyc_status: KycStatus) -> None:
    if role in KYC_GATED_ROLES and kyc_status is not KycStatus.APPROVED:
        raise DomainError(
            "KYC_REQUIRED", f"the {role.value} role requires approved KYC", ("role",)
        )


# ---------------------------------------------------------------- KYC applications

KYC_FIELD_MAX = 200
KYC_MAX_DOCUMENTS = 10
DOCUMENT_REF_MAX = 500


def _documents(docs: list[str] | None, v: Validator) -> list[str]:
    if not docs:
        v.add("REQUIRED", "at least one document is required", "documents")
        return []
    if len(docs) > KYC_MAX_DOCUMENTS:
        v.add("TOO_MANY", f"at most {KYC_MAX_DOCUMENTS} documents", "documents")
        return []
    cleaned = []
    for i, doc in enumerate(docs):
        ref = v.run(clean_text, doc, "documents", max_length=DOCUMENT_REF_MAX, required=True)
        if ref is not None:
            if not re.match(r"^(https://|s3://|doc_)[^\s]+$", ref):
                v.add(
                    "INVALID_DOCUMENT",
                    f"document {i + 1} must be an https:// or s3:// reference or an uploaded doc_ id",
                    "documents",
                    str(i),
                )
            else:
                cleaned.append(ref)
    return cleaned


def validate_bidder_kyc(
    full_name: str | None, id_number: str | None, address: str | None, documents: list[str] | None
) -> dict[str, Any]:
    v = Validator()
    data = {
        "fullName": v.run(
            clean_text, full_name, "fullName", max_length=KYC_FIELD_MAX, required=True, name=True
        ),
        "idNumber": v.run(clean_text, id_number, "idNumber", max_length=64, required=True),
        "address": v.run(
            clean_text, address, "address", max_length=KYC_FIELD_MAX, required=True, multiline=True
        ),
        "documents": _documents(documents, v),
    }
    v.check()
    return data


def validate_dealer_application(
    business_name: str | None,
    registration_number: str | None,
    address: str | None,
    phone: str | None,
    documents: list[str] | None,
) -> dict[str, Any]:
    v = Validator()
    data = {
        "businessName": v.run(
            clean_text, business_name, "businessName", max_length=KYC_FIELD_MAX, required=True,
            name=True,
        ),
        "registrationNumber": v.run(
            clean_text, registration_number, "registrationNumber", max_length=64, required=True
        ),
        "address": v.run(
            clean_text, address, "address", max_length=KYC_FIELD_MAX, required=True, multiline=True
        ),
        "phone": v.run(normalize_phone, phone),
        "documents": _documents(documents, v),
    }
    if data["phone"] is None and not any(e.field == ("phone",) for e in v.errors):
        v.add("REQUIRED", "phone is required", "phone")
    v.check()
    return data


def check_can_apply(kind: KycKind, role: Role, kyc_status: KycStatus, has_pending: bool) -> None:
    """Who may open a KYC / dealer application, given their current state."""
    if has_pending:
        raise DomainError("APPLICATION_PENDING", "an application is already under review")
    if kind is KycKind.DEALER:
        if role is Role.DEALER:
            raise DomainError("ALREADY_DEALER", "you are already a dealer")
        if role in STAFF_ROLES:
            raise DomainError("NOT_APPLICABLE", "staff accounts cannot apply to be dealers")
    elif kyc_status is KycStatus.APPROVED:
        raise DomainError("KYC_ALREADY_APPROVED", "your identity is already verified")


@dataclass(frozen=True)
class ReviewOutcome:
    application_status: KycStatus
    kyc_status: KycStatus
    role: Role


def review_application(
    kind: KycKind, role: Role, kyc_status: KycStatus, approve: bool, reason: str | None
) -> ReviewOutcome:
    """The result of an admin's decision on a pending application.

    Approving a dealer application makes the applicant a DEALER (seed 004 workflow 6). A
    rejection must say why, so the applicant can fix and re-apply; rejecting a dealer
    application does not take away identity verification the user already had.
    """
    if not approve:
        if not reason:
            raise DomainError("REASON_REQUIRED", "a rejection must give a reason", ("reason",))
        keep = kind is KycKind.DEALER and kyc_status is KycStatus.APPROVED
        return ReviewOutcome(
            KycStatus.REJECTED, KycStatus.APPROVED if keep else KycStatus.REJECTED, role
        )
    new_role = role
    if kind is KycKind.DEALER and role in (Role.USER, Role.VERIFIED_SELLER):
        new_role = Role.DEALER
    check_role_kyc(new_role, KycStatus.APPROVED)
    return ReviewOutcome(KycStatus.APPROVED, KycStatus.APPROVED, new_role)


def kyc_status_while_pending(current: KycStatus) -> KycStatus:
    """An application under review leaves an already-verified user verified."""
    return current if current is KycStatus.APPROVED else KycStatus.PENDING
