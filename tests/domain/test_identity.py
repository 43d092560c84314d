"""Pure identity rules: no database, no event loop."""

import pytest

from forecourt.domain import identity as rules
from forecourt.domain.errors import DomainError, ValidationFailed
from forecourt.domain.identity import KycKind, KycStatus, Role
from forecourt.domain.text import clean_text


def codes(err: DomainError) -> set[str]:
    return {e.code for e in err.errors}


@pytest.mark.parametrize("password", ["Gearbox1", "Zz345678", "ÄÖÜabcd9x"])
def test_password_rule_accepts(password):
    assert rules.check_password(password) == password


@pytest.mark.parametrize(
    "password,code",
    [
        ("Abcde1", "WEAK_PASSWORD"),  # too short
        ("abcdefgh1", "WEAK_PASSWORD"),  # no upper case
        ("Abcdefghi", "WEAK_PASSWORD"),  # no digit
        ("", "REQUIRED"),
        ("A1" + "a" * 300, "PASSWORD_TOO_LONG"),
        ("Abcdefg1\x00", "INVALID_CHARACTERS"),
    ],
)
def test_password_rule_rejects(password, code):
    with pytest.raises(DomainError) as exc:
        rules.check_password(password)
    assert exc.value.code == code


def test_email_is_normalised_to_lower_case():
    assert rules.normalize_email("  Ann.Smith@Example.COM ") == "ann.smith@example.com"


@pytest.mark.parametrize(
    "email", ["plain", "a@", "@b.com", "a b@c.com", "x" * 300 + "@e.com", "<script>@x.com", "a@b"]
)
def test_email_rejects_malformed(email):
    with pytest.raises(DomainError) as exc:
        rules.normalize_email(email)
    assert exc.value.code == "INVALID_EMAIL"


def test_phone_is_international_format():
    assert rules.normalize_phone("+234 801 234 5678") == "+2348012345678"
    with pytest.raises(DomainError):
        rules.normalize_phone("08012345678")


def test_registration_reports_every_bad_field_at_once():
    with pytest.raises(ValidationFailed) as exc:
        rules.validate_registration("nope", "weak", "x" * 101, "123")
    assert {e.field for e in exc.value.errors} == {
        ("email",), ("password",), ("displayName",), ("phone",)
    }


def test_clean_text_rejects_control_characters_and_normalises():
    assert clean_text("  Cafe\u0301 ", "n", max_length=10) == "Café"
    with pytest.raises(DomainError) as exc:
        clean_text("bad\x07bell", "n", max_length=50)
    assert exc.value.code == "INVALID_CHARACTERS"
    assert clean_text("line1\nline2", "n", max_length=50, multiline=True) == "line1\nline2"
    with pytest.raises(DomainError):
        clean_text("x" * 11, "n", max_length=10)


def test_dealer_and_verified_seller_need_approved_kyc():
    for role in (Role.DEALER, Role.VERIFIED_SELLER):
        with pytest.raises(DomainError) as exc:
            rules.check_role_kyc(role, KycStatus.PENDING)
        assert exc.value.code == "KYC_REQUIRED"
        rules.check_role_kyc(role, KycStatus.APPROVED)
    rules.check_role_kyc(Role.USER, KycStatus.NONE)


def test_approving_a_dealer_application_makes_a_dealer():
    outcome = rules.review_application(KycKind.DEALER, Role.USER, KycStatus.PENDING, True, None)
    assert outcome.role is Role.DEALER and outcome.kyc_status is KycStatus.APPROVED


def test_approving_a_bidder_application_keeps_the_role():
    outcome = rules.review_application(KycKind.BIDDER, Role.USER, KycStatus.PENDING, True, None)
    assert outcome.role is Role.USER and outcome.kyc_status is KycStatus.APPROVED


def test_staff_are_not_demoted_by_a_dealer_approval():
    outcome = rules.review_application(KycKind.DEALER, Role.MANAGER, KycStatus.PENDING, True, None)
    assert outcome.role is Role.MANAGER


def test_rejection_needs_a_reason():
    with pytest.raises(DomainError) as exc:
        rules.review_application(KycKind.BIDDER, Role.USER, KycStatus.PENDING, False, None)
    assert exc.value.code == "REASON_REQUIRED"
    outcome = rules.review_application(KycKind.BIDDER, Role.USER, KycStatus.PENDING, False, "blurry")
    assert outcome.kyc_status is KycStatus.REJECTED and outcome.role is Role.USER


def test_rejected_dealer_application_keeps_earlier_verification():
    outcome = rules.review_application(KycKind.DEALER, Role.USER, KycStatus.APPROVED, False, "no CAC")
    assert outcome.application_status is KycStatus.REJECTED
    assert outcome.kyc_status is KycStatus.APPROVED


def test_who_may_apply():
    with pytest.raises(DomainError) as exc:
        rules.check_can_apply(KycKind.BIDDER, Role.USER, KycStatus.NONE, has_pending=True)
    assert exc.value.code == "APPLICATION_PENDING"
    with pytest.raises(DomainError) as exc:
        rules.check_can_apply(KycKind.BIDDER, Role.USER, KycStatus.APPROVED, has_pending=False)
    assert exc.value.code == "KYC_ALREADY_APPROVED"
    with pytest.raises(DomainError) as exc:
        rules.check_can_apply(KycKind.DEALER, Role.DEALER, KycStatus.APPROVED, has_pending=False)
    assert exc.value.code == "ALREADY_DEALER"
    rules.check_can_apply(KycKind.DEALER, Role.USER, KycStatus.APPROVED, has_pending=False)
    assert rules.kyc_status_while_pending(KycStatus.APPROVED) is KycStatus.APPROVED
    assert rules.kyc_status_while_pending(KycStatus.REJECTED) is KycStatus.PENDING


def test_kyc_documents_must_be_references():
    with pytest.raises(ValidationFailed) as exc:
        rules.validate_bidder_kyc("Ann", "A123", "1 Road", ["javascript:alert(1)"])
    assert "INVALID_DOCUMENT" in codes(exc.value)
    with pytest.raises(ValidationFailed) as exc:
        rules.validate_bidder_kyc("Ann", "A123", "1 Road", [])
    assert "REQUIRED" in codes(exc.value)
    data = rules.validate_bidder_kyc(" Ann ", "A123", "1 Road", ["https://files.example/id.png"])
    assert data["fullName"] == "Ann"


# ---------------------------------------------------------------- password normalisation


ZERO_WIDTH_SPACE = "\u200b"


@pytest.mark.parametrize("password", [
    "A1" + ZERO_WIDTH_SPACE * 6,  # the reported one: two visible characters
    "Abcdefg1\u200d",  # zero-width joiner
    "Abcdefg1\u202e",  # right-to-left override
    "Abcdefg1\ufeff",  # byte-order mark
    "Abcdefg1\t",  # control
    "Abcdefg1\u2028",  # line separator
    "Abcdefg1\ue000",  # private use
])
def test_invisible_characters_are_refused(password):
    with pytest.raises(DomainError) as exc:
        rules.check_password(password)
    assert exc.value.code == "INVALID_CHARACTERS" and exc.value.field == ("password",)


def test_spaces_are_allowed_but_only_visible_characters_count():
    assert rules.check_password("Blue 7 horse battery") == "Blue 7 horse battery"
    with pytest.raises(DomainError) as exc:
        rules.check_password("A1 b  c  d")  # 10 characters, 5 visible
    assert exc.value.code == "WEAK_PASSWORD"
    with pytest.raises(DomainError) as exc:
        rules.check_password("A1b\u00a0\u3000\u2003cd")  # other spaces become plain ones
    assert exc.value.code == "WEAK_PASSWORD"


def test_the_password_is_normalised_to_nfkc():
    composed, decomposed = "Caf\u00e9Noir7", "Cafe\u0301Noir7"
    assert rules.check_password(composed) == rules.check_password(decomposed) == composed
    assert rules.check_password("\uff27earbox1") == "Gearbox1"  # a full-width G
    assert rules.normalize_password(decomposed) == composed


@pytest.mark.parametrize("password", ["Password1", "PASSWORD123", "Qwerty123!", "Sunshine2024", "Iloveyou!!1",
                                      "Trustno1", "Football#99", "1Qaz2wsx"])
def test_common_passwords_are_refused(password):
    with pytest.raises(DomainError) as exc:
        rules.check_password(password)
    assert exc.value.code == "COMMON_PASSWORD"


def test_uncommon_passwords_with_a_short_common_stem_pass():
    assert rules.check_password("Abc1234567") == "Abc1234567"  # stem "abc" is too short to judge
    assert not rules.is_common_password("Gearbox-Lagos-42")


def test_registration_keeps_the_normalised_password():
    reg = rules.validate_registration("a@example.com", "Cafe\u0301Noir7", None, None)
    assert reg.password == "Caf\u00e9Noir7"
