"""Contract section 1: social-security numbers, organisation codes, occupation codes."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from schemas.identity import (
    IdentityError,
    make_org_code,
    make_ssn,
    mask_ssn,
    normalise_ssn,
    ssn_check_char,
    validate_occupation_code,
    validate_org_code,
)

# --- social-security numbers: the contract vectors -----------------------------------------


def test_vector_with_check_x_is_valid():
    ssn = normalise_ssn("11010519491231002X")
    assert ssn.number == "11010519491231002X"
    assert ssn.legacy is None
    assert ssn.birth_date == dt.date(1949, 12, 31)
    assert ssn.sex == "female"  # 17th digit 2


def test_vector_born_1880_is_valid():
    ssn = normalise_ssn("440524188001010014")
    assert ssn.number == "440524188001010014"
    assert ssn.birth_date == dt.date(1880, 1, 1)
    assert ssn.sex == "male"  # 17th digit 1


def test_legacy_15_digit_number_is_upgraded_and_kept_as_alias():
    ssn = normalise_ssn("130503670401001")
    assert ssn.number == "130503196704010016"
    assert ssn.legacy == "130503670401001"
    assert ssn.birth_date == dt.date(1967, 4, 1)
    assert ssn.sex == "male"


def test_check_character_algorithm_matches_vectors():
    assert ssn_check_char("11010519491231002") == "X"
    assert ssn_check_char("44052418800101001") == "4"
    assert ssn_check_char("13050319670401001") == "6"
    assert make_ssn("11010519491231002") == "11010519491231002X"


# --- normalisation -------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    "１１０１０５１９４９１２３１００２Ｘ",  # full-width digits and X (NFKC)
    "１１０１０５１９４９１２３１００２ｘ",  # full-width lower-case x
    "11010519491231002x",  # lower-case x
    "  11010519491231002X  ",
    "\t11010519491231002X\r\n",
    "\u300011010519491231002X\u3000",  # ideographic spaces (NFKC -> space, then stripped)
])
def test_normalisation_nfkc_strip_and_upper_x(raw):
    assert normalise_ssn(raw).number == "11010519491231002X"


def test_legacy_number_in_full_width_digits_with_spaces():
    ssn = normalise_ssn(" １３０５０３６７０４０１００１ ")
    assert ssn.number == "130503196704010016"
    assert ssn.legacy == "130503670401001"


# --- invalid numbers -----------------------------------------------------------------------

def _invalid(raw, **kw) -> IdentityError:
    with pytest.raises(IdentityError) as info:
        normalise_ssn(raw, **kw)
    assert info.value.reason == "invalid_ssn"
    return info.value


@pytest.mark.parametrize("check", [c for c in "0123456789X" if c != "X"])
def test_wrong_check_character_is_invalid(check):
    err = _invalid("11010519491231002" + check)
    assert "check" in err.message


@pytest.mark.parametrize("first17", [
    "11010519490229001",  # 1949 is not a leap year
    "11010519491301001",  # month 13
    "11010519491200001",  # day 0
    "11010519490431001",  # 31 April
])
def test_birth_date_that_is_not_a_calendar_date_is_invalid(first17):
    err = _invalid(make_ssn(first17))
    assert "date" in err.message


def test_leap_day_is_a_valid_birth_date():
    assert normalise_ssn(make_ssn("11010519480229001")).birth_date == dt.date(1948, 2, 29)


def test_birth_before_1880_is_invalid():
    err = _invalid(make_ssn("11010518791231001"))
    assert "1880" in err.message


def test_future_birth_is_invalid_relative_to_today():
    today = dt.date(2000, 1, 1)
    assert normalise_ssn(make_ssn("11010520000101001"), today=today).birth_date == today
    _invalid(make_ssn("11010520000102001"), today=today)


def test_future_birth_is_invalid_with_the_real_clock():
    tomorrow = dt.date.today() + dt.timedelta(days=2)
    _invalid(make_ssn("110105" + tomorrow.strftime("%Y%m%d") + "001"))


@pytest.mark.parametrize("raw", [
    "",
    "1101051949123100",  # 16
    "11010519491231002XX",  # 19
    "1101051949123100Y2",  # a letter inside
    "11010519491231002Y",  # Y is not a check character
    "13050367040100A",  # 15 characters, not all digits
    "130503671301001",  # legacy number with month 13
    "110105 19491231002X",  # inner space
])
def test_malformed_numbers_are_invalid(raw):
    _invalid(raw)


@pytest.mark.parametrize("raw", [None, 11010519491231002, ["11010519491231002X"]])
def test_non_string_is_invalid(raw):
    _invalid(raw)


@pytest.mark.parametrize("digit, sex", [(str(d), "male" if d % 2 else "female") for d in range(10)])
def test_sex_from_17th_digit(digit, sex):
    ssn = normalise_ssn(make_ssn("1101051990010100" + digit))
    assert ssn.sex == sex


@pytest.mark.parametrize("raw", [
    "110105194912310021",  # wrong check
    make_ssn("11010519490230001"),  # not a date
    make_ssn("11010518700101001"),  # before 1880
])
def test_error_messages_never_show_the_full_number(raw):
    err = _invalid(raw)
    assert raw not in err.message
    assert raw[6:14] not in err.message  # the birth date digits are masked
    assert raw not in str(err)


# --- masking -------------------------------------------------------------------------------

def test_mask_of_18_and_15_character_numbers():
    assert mask_ssn("11010519491231002X") == "110105********002X"
    assert mask_ssn("130503670401001") == "130503******001"


@given(st.text(alphabet="0123456789X", min_size=18, max_size=18))
@settings(max_examples=100, deadline=None)
def test_mask_never_shows_the_middle_digits(number):
    masked = mask_ssn(number)
    assert len(masked) == 18
    assert masked[6:14] == "*" * 8
    assert masked[:6] == number[:6] and masked[14:] == number[14:]


@given(st.text(min_size=0, max_size=40))
@settings(max_examples=100, deadline=None)
def test_mask_of_anything_shows_at_most_six_plus_four_characters(text):
    assume("*" not in text)
    masked = mask_ssn(text)
    shown = [c for c in masked if c != "*"]
    assert len(shown) <= 10
    if len(text.strip()) > 10:
        assert text.strip() not in masked


# --- organisation codes ----------------------------------------------------------------------

ORG_VECTORS = ["914403001922038216", "91440300708461136T", "91330100716105852F"]


@pytest.mark.parametrize("code", ORG_VECTORS)
def test_org_code_vectors_are_valid(code):
    assert validate_org_code(code) == code
    assert make_org_code(code[:17]) == code


@pytest.mark.parametrize("code", ORG_VECTORS)
@pytest.mark.parametrize("bad", list("IOSVZ"))
def test_org_code_with_letter_outside_the_alphabet_is_invalid(code, bad):
    altered = code[:10] + bad + code[11:]
    with pytest.raises(IdentityError) as info:
        validate_org_code(altered)
    assert info.value.reason == "invalid_org_code"
    assert "alphabet" in info.value.message


@pytest.mark.parametrize("code", ORG_VECTORS)
def test_org_code_with_any_other_check_character_is_invalid(code):
    for other in "0123456789ABCDEFGHJKLMNPQRTUWXY":
        if other == code[17]:
            continue
        with pytest.raises(IdentityError) as info:
            validate_org_code(code[:17] + other)
        assert info.value.reason == "invalid_org_code"


@pytest.mark.parametrize("code", ORG_VECTORS)
def test_org_code_with_one_body_character_changed_is_invalid(code):
    for pos in range(17):
        replacement = "1" if code[pos] != "1" else "2"
        with pytest.raises(IdentityError):
            validate_org_code(code[:pos] + replacement + code[pos + 1:])


def test_org_code_with_two_adjacent_characters_swapped_is_invalid():
    code = "91440300708461136T"
    swapped = code[:8] + code[9] + code[8] + code[10:]
    assert swapped != code
    with pytest.raises(IdentityError):
        validate_org_code(swapped)


@pytest.mark.parametrize("code", ["", "91440300708461136", "91440300708461136TT"])
def test_org_code_of_wrong_length_is_invalid(code):
    with pytest.raises(IdentityError) as info:
        validate_org_code(code)
    assert info.value.reason == "invalid_org_code"


@given(st.text(alphabet="0123456789ABCDEFGHJKLMNPQRTUWXY", min_size=17, max_size=17))
@settings(max_examples=100, deadline=None)
def test_make_org_code_always_validates(first17):
    code = make_org_code(first17)
    assert validate_org_code(code) == code
    assert code[:17] == first17


# --- occupation codes ----------------------------------------------------------------------

@pytest.mark.parametrize("code", ["1-01-00-00", "6-18-01-01", "8-99-99-99", "6-18-01-01-02", "4-02-01-01-00"])
def test_valid_occupation_codes(code):
    assert validate_occupation_code(code) == code


@pytest.mark.parametrize("code", [
    "0-01-01-01",  # major category 0
    "9-01-01-01",  # major category 9
    "6-18-01",  # too short
    "6-18-01-1",
    "6-18-01-01-2",  # job type must be two digits
    "6-18-01-01-02-03",  # two job types
    "61-8-01-01",
    "6180101",
    "6_18_01_01",
    " 6-18-01-01",
    "",
])
def test_invalid_occupation_codes(code):
    with pytest.raises(IdentityError) as info:
        validate_occupation_code(code)
    assert info.value.reason == "invalid_occupation_code"


# --- only ASCII digits, and nothing after the code -------------------------------------------

@pytest.mark.parametrize("zero", [0x0660, 0x06F0, 0x0966])  # Arabic-Indic, Persian, Devanagari
def test_digits_of_other_scripts_that_nfkc_keeps_are_invalid(zero):
    for number in ("11010519491231002X", "130503670401001"):
        other = "".join(chr(zero + int(c)) if c.isdigit() else c for c in number)
        _invalid(other)
    _invalid("1101051949123100" + chr(zero + 2) + "X")  # one digit is enough


def test_occupation_code_with_trailing_newline_is_invalid():
    with pytest.raises(IdentityError):
        validate_occupation_code("6-18-01-01\n")


def test_occupation_code_with_full_width_digits_is_invalid():
    with pytest.raises(IdentityError):
        validate_occupation_code("6-１８-01-01")
