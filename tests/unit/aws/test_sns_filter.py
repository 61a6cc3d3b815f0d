"""SNS filter policies against AWS's documented examples and AWS's recorded error texts.

The match tables are the policy/message pairs of the SNS developer guide
("Subscription filter policies" and its pages on string, numeric, key, AND/OR,
and IP address matching, and "Filter policy constraints"). The error texts are
what real SNS answered (as recorded by LocalStack's AWS-validated snapshots),
without the Jackson location suffix AWS appends.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dovecote.aws.errors import AwsError
from dovecote.aws.sns_filter import FilterPolicy, FilterPolicyError, check_scope


def attrs(**values: Any) -> dict[str, tuple[str, str | bytes]]:
    """Message attributes the way Publish gives them: str -> String, number -> Number,
    list -> String.Array, bytes -> Binary."""
    out: dict[str, tuple[str, str | bytes]] = {}
    for name, v in values.items():
        if isinstance(v, bytes):
            out[name] = ("Binary", v)
        elif isinstance(v, list):
            out[name] = ("String.Array", json.dumps(v))
        elif isinstance(v, int | float):
            out[name] = ("Number", repr(v))
        else:
            out[name] = ("String", v)
    return out


def policy(doc: dict[str, Any], scope: str = "MessageAttributes") -> FilterPolicy:
    return FilterPolicy.parse(json.dumps(doc), scope)


# --- AWS's documented examples ----------------------------------------------------------

# (policy property, attributes that match, attributes that don't)
ATTRIBUTE_EXAMPLES = [
    (  # string exact matching
        {"customer_interests": ["rugby", "tennis"]},
        [
            attrs(customer_interests="rugby"),
            attrs(customer_interests="tennis"),
            attrs(customer_interests=["rugby", "tennis"]),
        ],
        [attrs(customer_interests="baseball"), attrs(customer_interests=["baseball"])],
    ),
    (  # string anything-but: for a String.Array, no element may be listed
        {"customer_interests": [{"anything-but": ["rugby", "tennis"]}]},
        [
            attrs(customer_interests="baseball"),
            attrs(customer_interests="football"),
            attrs(customer_interests=["baseball", "football"]),
        ],
        [
            attrs(customer_interests="rugby"),
            attrs(customer_interests=["rugby", "baseball"]),
            attrs(other="baseball"),
        ],
    ),
    (  # anything-but with a prefix
        {"event": [{"anything-but": {"prefix": "order-"}}]},
        [attrs(event="data-entry"), attrs(event="order_number")],
        [attrs(event="order-cancelled"), attrs(store="x")],
    ),
    (  # prefix
        {"customer_interests": [{"prefix": "bas"}]},
        [attrs(customer_interests="baseball"), attrs(customer_interests="basketball")],
        [attrs(customer_interests="rugby")],
    ),
    (  # suffix
        {"customer_interests": [{"suffix": "ball"}]},
        [attrs(customer_interests="baseball"), attrs(customer_interests="basketball")],
        [attrs(customer_interests="rugby")],
    ),
    (  # equals-ignore-case
        {"customer_interests": [{"equals-ignore-case": "tennis"}]},
        [attrs(customer_interests="TENNIS"), attrs(customer_interests="Tennis")],
        [attrs(customer_interests="baseball")],
    ),
    (  # IP address matching
        {"source_ip": [{"cidr": "10.0.0.0/24"}]},
        [attrs(source_ip="10.0.0.0"), attrs(source_ip="10.0.0.255")],
        [attrs(source_ip="10.1.1.0"), attrs(source_ip="not an ip")],
    ),
    (  # numeric exact matching
        {"price_usd": [{"numeric": ["=", 301.5]}]},
        [attrs(price_usd=301.5), {"price_usd": ("Number", "3.015e2")}],
        [attrs(price_usd=301.6), attrs(price_usd="301.5")],
    ),
    (  # numeric anything-but
        {"price": [{"anything-but": [100, 500]}]},
        [attrs(price=101), attrs(price=100.1)],
        [attrs(price=100), attrs(price=500)],
    ),
    (  # numeric range
        {"price_usd": [{"numeric": [">", 0, "<=", 150]}]},
        [attrs(price_usd=100), attrs(price_usd=150), attrs(price_usd=0.1)],
        [attrs(price_usd=0), attrs(price_usd=150.1), attrs(price_usd=-1)],
    ),
    (  # key matching: exists true
        {"store": [{"exists": True}]},
        [attrs(store="fans", customer_interests=["baseball", "basketball"])],
        [attrs(customer_interests=["baseball", "basketball"])],
    ),
    (  # key matching: exists false; an empty set of attributes never matches
        {"store": [{"exists": False}]},
        [attrs(customer_interests=["baseball", "basketball"])],
        [attrs(store="fans"), {}],
    ),
    (  # AND logic over keys, OR over a key's values
        {"customer_interests": ["rugby"], "price_usd": [{"numeric": [">", 100]}]},
        [attrs(customer_interests=["rugby", "football"], price_usd=120)],
        [attrs(customer_interests=["rugby"], price_usd=100), attrs(customer_interests="rugby")],
    ),
    (  # OR operator
        {
            "source": ["aws.cloudwatch"],
            "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}],
        },
        [
            attrs(source="aws.cloudwatch", metricName="CPUUtilization"),
            attrs(source="aws.cloudwatch", namespace="AWS/EC2"),
        ],
        [
            attrs(source="aws.cloudwatch", metricName="ReadLatency"),
            attrs(source="aws.other", namespace="AWS/EC2"),
        ],
    ),
    (  # the guide's whole example policy against its example message
        {
            "store": ["example_corp"],
            "event": [{"anything-but": "order_cancelled"}],
            "customer_interests": ["rugby", "football", "baseball"],
            "price_usd": [{"numeric": [">=", 100]}],
        },
        [
            attrs(
                customer_interests=["soccer", "rugby", "hockey"],
                store="example_corp",
                event="order_placed",
                price_usd=210.75,
            )
        ],
        [
            attrs(
                customer_interests=["soccer", "rugby", "hockey"],
                store="example_corp",
                event="order_cancelled",
                price_usd=210.75,
            )
        ],
    ),
]


@pytest.mark.parametrize(("doc", "yes", "no"), ATTRIBUTE_EXAMPLES)
def test_documented_attribute_examples(doc: dict[str, Any], yes: list, no: list) -> None:
    p = policy(doc)
    for message in yes:
        assert p.matches_attributes(message), message
    for message in no:
        assert not p.matches_attributes(message), message


BODY_EXAMPLES = [
    (
        {"customer_interests": ["rugby", "tennis"]},
        [{"customer_interests": "rugby"}, {"customer_interests": ["baseball", "tennis"]}],
        [{"customer_interests": "baseball"}, {}],
    ),
    (
        {"customer_interests": [{"anything-but": ["rugby", "tennis"]}]},
        [{"customer_interests": "baseball"}, {"customer_interests": "football"}],
        [{"customer_interests": "rugby"}, {"other": "x"}],
    ),
    (
        {"price_usd": [{"numeric": ["=", 301.5]}]},
        ['{"price_usd": 301.5}', '{"price_usd": 3.015e2}'],
        [{"price_usd": "301.5"}],
    ),
    (
        {"store": [{"exists": True}]},
        [{"store": "fans", "customer_interests": ["baseball", "basketball"]}],
        [{"customer_interests": ["baseball"]}, {"store": None}, {"store": {"inner": 1}}],
    ),
    (
        {"store": [{"exists": False}]},
        [{"customer_interests": ["baseball", "basketball"]}, {"store": None}],
        [{"store": "fans"}],
    ),
    (  # payload-based policies nest
        {"Records": {"s3": {"object": {"key": [{"prefix": "auto-"}]}}}},
        [
            {"Records": [{"s3": {"object": {"key": "auto-insurance-2314.xml"}}}]},
            {"Records": [{"s3": {"object": [[{"key": "auto-insurance-2314.xml"}]]}}]},
        ],
        [{"Records": [{"s3": {"object": {"key": "home-insurance-2314.xml"}}}]}],
    ),
    (  # a dotted body key is the same path as the nested one (recorded against AWS)
        {"object": {"nested": ["string.value"]}},
        [
            {"object": {"nested": "string.value"}},
            {"object.nested": "string.value"},
            {"object": [{"nested": ["x", "string.value"]}]},
        ],
        [{"object": {"nested": "other"}}, {"object": "string.value"}],
    ),
    (
        {"flag": [True], "nothing": [None]},
        [{"flag": True, "nothing": None}],
        [{"flag": "true", "nothing": None}, {"flag": True}, {"flag": 1, "nothing": None}],
    ),
    (
        {"a": {"$or": [{"b": ["x"]}, {"c": [{"numeric": [">", 1]}]}]}},
        [{"a": {"b": "x"}}, {"a": {"c": 2}}],
        [{"a": {"b": "y", "c": 1}}, {"b": "x"}],
    ),
]


@pytest.mark.parametrize(("doc", "yes", "no"), BODY_EXAMPLES)
def test_documented_body_examples(doc: dict[str, Any], yes: list, no: list) -> None:
    p = policy(doc, "MessageBody")
    for message in yes:
        body = message if isinstance(message, str) else json.dumps(message)
        assert p.matches_body(body), body
        assert p.matches_body(body.encode()), body
    for message in no:
        body = message if isinstance(message, str) else json.dumps(message)
        assert not p.matches_body(body), body


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '"text"', "42", "null", b"\xff"])
def test_body_that_is_not_a_json_object_matches_nothing(body: str | bytes) -> None:
    p = policy({"a": [{"exists": False}]}, "MessageBody")
    assert not p.matches_body(body)


def test_binary_attributes_are_ignored() -> None:
    p = policy({"data": [{"exists": True}]})
    assert not p.matches_attributes(attrs(data=b"\x00\x01"))
    assert policy({"data": [{"exists": False}]}).matches_attributes(attrs(data=b"x", other="y"))
    assert (
        policy({"n": [1]}).matches_attributes({"n": ("Binary", b"1"), "m": ("String", "")}) is False
    )


def test_custom_type_suffixes_keep_their_base_type() -> None:
    assert policy({"n": [{"numeric": [">", 1]}]}).matches_attributes({"n": ("Number.float", "1.5")})
    assert policy({"s": ["x"]}).matches_attributes({"s": ("String.custom", "x")})
    assert not policy({"b": ["x"]}).matches_attributes({"b": ("Binary.png", b"x")})


def test_string_array_elements_keep_their_json_types() -> None:
    p = policy({"a": [5]})
    assert p.matches_attributes(attrs(a=["x", 5]))
    assert not p.matches_attributes(attrs(a=["5"]))
    assert policy({"a": [True]}).matches_attributes(attrs(a=[True]))
    assert not policy({"a": [1]}).matches_attributes(attrs(a=[True]))
    assert not p.matches_attributes({"a": ("String.Array", "not json")})


def test_null_does_not_match_a_missing_attribute() -> None:
    # Recorded against AWS: [null, {"anything-but": "whatever"}] filters out a message
    # without attributes.
    p = policy({"attr1": [None, {"anything-but": "whatever"}]})
    assert not p.matches_attributes({})
    assert p.matches_attributes(attrs(attr1="other"))


def test_numbers_compare_to_five_decimals() -> None:
    p = policy({"n": [{"numeric": ["=", 1.000001]}]})
    assert p.matches_attributes(attrs(n=1))
    assert not policy({"n": [{"numeric": ["=", 1.00001]}]}).matches_attributes(attrs(n=1))
    assert policy({"n": [10]}).matches_attributes({"n": ("Number", "1e1")})


def test_policy_keeps_text_and_scope() -> None:
    text = '{"a": ["b"]}'
    p = FilterPolicy.parse(text, "MessageBody")
    assert (p.text, p.scope) == (text, "MessageBody")
    assert FilterPolicy.parse(text).scope == "MessageAttributes"
    assert p.matches({}, '{"a": "b"}')
    assert FilterPolicy.parse(text).matches(attrs(a="b"), "ignored")


def test_empty_policy_matches_everything() -> None:
    assert policy({}).matches_attributes({})
    assert policy({}, "MessageBody").matches_body("{}")


# --- validation: AWS's recorded answers ---------------------------------------------------

INVALID = [
    ('{"key":[["value"]]}', "Match value must be String, number, true, false, or null"),
    ('{"key":[{"wrong-operator":true}]}', "Unrecognized match type wrong-operator"),
    ('{"key":[{"suffix":"value","prefix":"value2"}]}', "Only one key allowed in match expression"),
    ('{"key":[{"suffix":100}]}', "suffix match pattern must be a string"),
    ('{"key":[{"suffix":null}]}', "suffix match pattern must be a string"),
    ('{"key":[{"suffix":[]}]}', "suffix match pattern must be a string"),
    ('{"key":[{"suffix":["test","test2"]}]}', "suffix match pattern must be a string"),
    ('{"key":[{"prefix":1}]}', "prefix match pattern must be a string"),
    ('{"key":[{"equals-ignore-case":1}]}', "equals-ignore-case match pattern must be a string"),
    ('{"key":{"suffix":"value"}}', '"suffix" must be an object or an array'),
    ('{"key":{"suffix":"value","prefix":"value"}}', '"suffix" must be an object or an array'),
    ('{"key":{"not-an-operator":"value"}}', '"not-an-operator" must be an object or an array'),
    ('{"key_a":"value_one"}', '"key_a" must be an object or an array'),
    ('{"key":[{"numeric":[]}]}', "Invalid member in numeric match: ]"),
    ('{"key":[{"numeric":["operator"]}]}', "Unrecognized numeric range operator: operator"),
    ('{"key":[{"numeric":[1,"<="]}]}', "Invalid member in numeric match: 1"),
    ('{"key":[{"numeric":["=","000"]}]}', "Value of equals must be numeric"),
    ('{"key":[{"numeric":[">="]}]}', "Value of >= must be numeric"),
    ('{"key":[{"numeric":["<",100,">",10]}]}', "Too many elements in numeric expression"),
    ('{"key":[{"numeric":[">=",1,">",2]}]}', "Bad numeric range operator: >"),
    ('{"key":[{"numeric":[">",3,"<",1]}]}', "Bottom must be less than top"),
    ('{"key":[{"numeric":[">",20,"<="]}]}', "Value of <= must be numeric"),
    ('{"key":[{"numeric":[">",20,30]}]}', "Bad value in numeric range: 30"),
    ('{"key":[{"numeric":[">",20,"test"]}]}', "Bad numeric range operator: test"),
    ('{"key":[{"numeric":[">","20","<","30"]}]}', "Value of > must be numeric"),
    ('{"key":[{"numeric":[">",20,"<","30"]}]}', "Value of < must be numeric"),
    ('{"key":[{"numeric":[">",20,"<",30,"<",50]}]}', "Too many terms in numeric range expression"),
    ('{"key":[{"numeric":["=",true]}]}', "Value of equals must be numeric"),
    ('{"key":[{"exists":null}]}', "exists match pattern must be either true or false."),
    ('{"key":[{"exists":"no"}]}', "exists match pattern must be either true or false."),
    (
        '{"key":[{"anything-but":{"wrong-operator":null}}]}',
        "Unsupported anything-but pattern: wrong-operator",
    ),
    ('{"key":[{"anything-but":{"suffix":"test"}}]}', "Unsupported anything-but pattern: suffix"),
    ('{"key":[{"anything-but":{"exists":false}}]}', "Unsupported anything-but pattern: exists"),
    ('{"key":[{"anything-but":{"prefix":false}}]}', "prefix match pattern must be a string"),
    ('{"key":[{"cidr":1}]}', "prefix match pattern must be a string"),
    ('{"key":[{"cidr":"10.0.0.0"}]}', "Malformed CIDR, one '/' required"),
    ('{"key":[{"cidr":"10.0.0.0/x"}]}', "Malformed CIDR, mask bits must be an integer"),
    ('{"key":[{"cidr":"10.0.0.300/24"}]}', "Nonstandard IP address: 10.0.0.300"),
    ('{"key":[]}', "Empty arrays are not allowed"),
    ("{not json", "failed to parse JSON."),
    ('["a"]', "failed to parse JSON."),
    (
        json.dumps({f"k{i}": ["v"] for i in range(6)}),
        "Filter policy can not have more than 5 keys",
    ),
    (json.dumps({"key": [f"v{i}" for i in range(151)]}), "Filter policy is too complex"),
    (
        json.dumps({"a": [f"v{i}" for i in range(13)], "b": [f"v{i}" for i in range(12)]}),
        "Filter policy is too complex",
    ),
    (  # an $or adds up its branches
        json.dumps(
            {"$or": [{"a": [f"v{i}" for i in range(100)]}, {"b": [f"w{i}" for i in range(51)]}]}
        ),
        "Filter policy is too complex",
    ),
]


@pytest.mark.parametrize(("text", "reason"), INVALID)
def test_invalid_policies_answer_with_aws_text(text: str, reason: str) -> None:
    with pytest.raises(FilterPolicyError) as caught:
        FilterPolicy.parse(text)
    err = caught.value
    assert isinstance(err, AwsError)
    assert err.code == "InvalidParameter"
    assert err.message == f"Invalid parameter: FilterPolicy: {reason}"
    with pytest.raises(FilterPolicyError) as on_subscribe:
        FilterPolicy.parse(text, subscribe=True)
    assert (
        on_subscribe.value.message
        == f"Invalid parameter: Attributes Reason: FilterPolicy: {reason}"
    )


def test_nested_policy_needs_body_scope() -> None:
    text = '{"object": {"key": [{"prefix": "auto-"}]}}'
    with pytest.raises(FilterPolicyError) as caught:
        FilterPolicy.parse(text)
    assert caught.value.message == (
        "Invalid parameter: Filter policy scope MessageAttributes does not support nested filter policy"
    )
    assert FilterPolicy.parse(text, "MessageBody").matches_body('{"object": {"key": "auto-x"}}')


def test_nested_complexity_multiplies_by_depth() -> None:
    # The constraints page: four values three levels deep and three values two levels
    # deep make 3 x 4 x 2 x 3 = 72 combinations, which is allowed.
    ok = {
        "key_a": {"key_b": {"key_c": ["v1", "v2", "v3", "v4"]}},
        "key_d": {"key_e": ["v1", "v2", "v3"]},
    }
    policy(ok, "MessageBody")
    ok["key_d"]["key_e"] += ["v4", "v5", "v6", "v7"]  # 12 x 14 = 168
    with pytest.raises(FilterPolicyError, match="Filter policy is too complex"):
        policy(ok, "MessageBody")


@pytest.mark.parametrize("scope", ["RandomValue", "", "messagebody"])
def test_unknown_scope(scope: str) -> None:
    reason = (
        f"FilterPolicyScope: Invalid value [{scope}]. "
        "Please use either MessageBody or MessageAttributes"
    )
    with pytest.raises(FilterPolicyError) as caught:
        FilterPolicy.parse('{"a": ["b"]}', scope)
    assert caught.value.message == f"Invalid parameter: {reason}"
    with pytest.raises(FilterPolicyError) as on_subscribe:
        check_scope(scope, subscribe=True)
    assert on_subscribe.value.message == f"Invalid parameter: Attributes Reason: {reason}"
    assert check_scope("MessageBody") == "MessageBody"


def test_too_large_policy() -> None:
    text = json.dumps({"a": ["x" * (256 * 1024)]})
    with pytest.raises(FilterPolicyError, match="too large"):
        FilterPolicy.parse(text)


# --- properties -----------------------------------------------------------------------------

KEYS = ["a", "b", "c"]
WORDS = ["rugby", "tennis", "Rugby", "rug", "by", ""]
NUMS = st.decimals(min_value=-1000, max_value=1000, places=2, allow_nan=False)

rules = st.one_of(
    st.sampled_from(WORDS),
    NUMS.map(float),
    st.builds(lambda w: {"prefix": w}, st.sampled_from(WORDS)),
    st.builds(lambda w: {"suffix": w}, st.sampled_from(WORDS)),
    st.builds(lambda w: {"equals-ignore-case": w}, st.sampled_from(WORDS)),
    st.builds(lambda b: {"exists": b}, st.booleans()),
    st.builds(lambda w: {"anything-but": w}, st.lists(st.sampled_from(WORDS), min_size=1)),
    st.builds(lambda w: {"anything-but": {"prefix": w}}, st.sampled_from(WORDS)),
    st.builds(lambda n: {"numeric": [">=", float(n)]}, NUMS),
)
flat_policies = st.dictionaries(
    st.sampled_from(KEYS), st.lists(rules, min_size=1, max_size=3), max_size=2
)
attribute_values = st.one_of(
    st.sampled_from(WORDS).map(lambda w: ("String", w)),
    NUMS.map(lambda n: ("Number", str(n))),
    st.lists(st.sampled_from(WORDS), max_size=3).map(lambda ws: ("String.Array", json.dumps(ws))),
)
messages = st.dictionaries(st.sampled_from(KEYS), attribute_values, max_size=3)


@settings(max_examples=300, deadline=None)
@given(flat_policies, flat_policies, messages)
def test_or_of_two_policies_is_either(one: dict, two: dict, message: dict) -> None:
    either = policy({"$or": [one, two]})
    assert either.matches_attributes(message) == (
        policy(one).matches_attributes(message) or policy(two).matches_attributes(message)
    )


@settings(max_examples=300, deadline=None)
@given(flat_policies, flat_policies, messages)
def test_keys_are_anded(one: dict, two: dict, message: dict) -> None:
    if set(one) & set(two):
        return
    both = policy({**one, **two})
    assert both.matches_attributes(message) == (
        policy(one).matches_attributes(message) and policy(two).matches_attributes(message)
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=3), st.sampled_from(WORDS))
def test_anything_but_is_the_negation_of_exact_for_present_strings(
    listed: list[str], value: str
) -> None:
    message = attrs(k=value)
    exact = policy({"k": listed}).matches_attributes(message)
    assert policy({"k": [{"anything-but": listed}]}).matches_attributes(message) is not exact
    assert policy({"k": [{"anything-but": {"prefix": value[:2]}}]}).matches_attributes(
        message
    ) is not policy({"k": [{"prefix": value[:2]}]}).matches_attributes(message)


OPS = {
    "<": lambda x, y: x < y,
    "<=": lambda x, y: x <= y,
    "=": lambda x, y: x == y,
    ">": lambda x, y: x > y,
    ">=": lambda x, y: x >= y,
}
FIVE_PLACES = st.decimals(min_value=-(10**9), max_value=10**9, places=5, allow_nan=False)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(OPS)), FIVE_PLACES, FIVE_PLACES)
def test_numeric_single_comparison_agrees_with_python(op: str, bound: Decimal, x: Decimal) -> None:
    p = FilterPolicy.parse(f'{{"n": [{{"numeric": ["{op}", {bound}]}}]}}')
    assert p.matches_attributes({"n": ("Number", str(x))}) == OPS[op](x, bound)
    body = FilterPolicy.parse(p.text, "MessageBody")
    assert body.matches_body(f'{{"n": {x}}}') == OPS[op](x, bound)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from([">", ">="]),
    st.sampled_from(["<", "<="]),
    FIVE_PLACES,
    FIVE_PLACES,
    FIVE_PLACES,
)
def test_numeric_range_agrees_with_python(
    lo_op: str, hi_op: str, a: Decimal, b: Decimal, x: Decimal
) -> None:
    low, high = sorted((a, b))
    text = f'{{"n": [{{"numeric": ["{lo_op}", {low}, "{hi_op}", {high}]}}]}}'
    if high == low:
        with pytest.raises(FilterPolicyError, match="Bottom must be less than top"):
            FilterPolicy.parse(text)
        return
    expected = OPS[lo_op](x, low) and OPS[hi_op](x, high)
    assert FilterPolicy.parse(text).matches_attributes({"n": ("Number", str(x))}) == expected


@settings(max_examples=300, deadline=None)
@given(flat_policies, st.dictionaries(st.sampled_from(KEYS), st.sampled_from(WORDS), min_size=1))
def test_body_and_attribute_scopes_agree_on_flat_strings(doc: dict, values: dict) -> None:
    text = json.dumps(doc)
    as_attributes = FilterPolicy.parse(text).matches_attributes(attrs(**values))
    as_body = FilterPolicy.parse(text, "MessageBody").matches_body(json.dumps(values))
    assert as_attributes == as_body


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(json_values, st.sampled_from(["MessageAttributes", "MessageBody"]), json_values)
def test_any_json_is_either_a_policy_or_an_aws_error(doc: Any, scope: str, body: Any) -> None:
    try:
        p = FilterPolicy.parse(json.dumps(doc), scope)
    except FilterPolicyError as err:
        assert err.code == "InvalidParameter"
        assert err.message.startswith("Invalid parameter: ")
        return
    assert isinstance(p.matches_body(json.dumps(body)), bool)
    assert isinstance(p.matches_attributes({"a": ("String", json.dumps(body))}), bool)
