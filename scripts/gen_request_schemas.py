#!/usr/bin/env python3
"""Writes crates/broker/src/wire/schemas.rs: the request schemas that the
frame walker (crates/broker/src/wire/walk.rs) checks a request against
before the kafka-protocol crate decodes it.

The walker must read a request exactly as the crate's decoder will, so the
facts (field order, types, the versions each field exists in, tagged fields)
are read off the decoders of the crate version in Cargo.lock, in the local
cargo registry. Nothing of the crate is copied: only those facts, written in
the walker's own table format. The round-trip test in walk.rs checks the
result against the crate's encoders and decoders for every version.

Usage: scripts/gen_request_schemas.py   (then cargo fmt)
Add an API to APIS below when the broker starts accepting it.
"""

import glob
import os
import re
import sys

# Every request the broker accepts, or will accept in the coming issues.
APIS = [
    "Produce", "Fetch", "ListOffsets", "Metadata", "ApiVersions",
    "CreateTopics", "DeleteTopics", "DescribeConfigs", "CreatePartitions",
    "IncrementalAlterConfigs", "DescribeTopicPartitions",
    # consumer groups
    "FindCoordinator", "JoinGroup", "SyncGroup", "Heartbeat", "LeaveGroup",
    "OffsetCommit", "OffsetFetch", "ListGroups", "DescribeGroups",
    "DeleteGroups", "OffsetDelete", "ConsumerGroupHeartbeat",
    "ConsumerGroupDescribe",
    # idempotence and transactions
    "InitProducerId", "AddPartitionsToTxn", "AddOffsetsToTxn",
    "TxnOffsetCommit", "EndTxn", "ListTransactions", "DescribeTransactions",
    "DescribeProducers", "WriteTxnMarkers",
]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "crates/broker/src/wire/schemas.rs")


def crate_dir():
    lock = open(os.path.join(ROOT, "Cargo.lock")).read()
    m = re.search(r'name = "kafka-protocol"\nversion = "([^"]+)"', lock)
    version = m.group(1)
    home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    dirs = glob.glob(f"{home}/registry/src/*/kafka-protocol-{version}")
    if not dirs:
        sys.exit(f"kafka-protocol {version} is not in {home}/registry; run cargo fetch")
    return dirs[0], version


def snake(name):
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def matching_brace(text, open_at):
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError("unbalanced braces")


def parse_expr(text):
    """An `if cond { a } else { b }` tree whose leaves decode or default."""
    text = text.strip()
    if text.startswith("if "):
        brace = text.index("{")
        cond = text[3:brace].strip()
        end = matching_brace(text, brace)
        then = parse_expr(text[brace + 1:end])
        rest = text[end + 1:].strip()
        otherwise = ("default",)
        if rest.startswith("else"):
            rest = rest[4:].strip()
            if rest.startswith("if "):
                otherwise = parse_expr(rest)
            else:
                otherwise = parse_expr(rest[1:matching_brace(rest, 0)])
        return ("if", cond, then, otherwise)
    if "bail!" in text:
        return ("default",)
    m = re.search(r"(types::.*?)\.decode\(buf\)", text, re.S)
    if m:
        return ("decode", m.group(1))
    return ("default",)


def eval_tree(tree, version):
    while tree[0] == "if":
        cond = tree[1].replace("&&", " and ").replace("||", " or ")
        tree = tree[2] if eval(cond, {}, {"version": version}) else tree[3]
    return tree[1] if tree[0] == "decode" else None


SCALARS = {
    "types::Int8": "Int8", "types::Int16": "Int16", "types::Int32": "Int32",
    "types::Int64": "Int64", "types::UInt16": "UInt16", "types::UInt32": "UInt32",
    "types::Float64": "Float64", "types::Boolean": "Bool", "types::Uuid": "Uuid",
    "types::String": "String", "types::CompactString": "String",
    "types::Bytes": "Bytes", "types::CompactBytes": "Bytes",
}


def type_of(decoder, struct_name):
    decoder = decoder.strip()
    if decoder in SCALARS:
        return SCALARS[decoder]
    m = re.fullmatch(r"types::(?:Compact)?Array\((.*)\)", decoder, re.S)
    if m:
        return ("Array", type_of(m.group(1), struct_name))
    if re.fullmatch(r"types::Struct\s*\{\s*version\s*\}", decoder):
        return ("Struct", struct_name)
    if re.fullmatch(r"types::OptionStruct\s*\{\s*version\s*\}", decoder):
        return ("OptionStruct", struct_name)
    raise ValueError(f"unknown decoder {decoder}")


def contiguous(versions):
    lo, hi = min(versions), max(versions)
    if sorted(versions) != list(range(lo, hi + 1)):
        raise ValueError(f"versions not contiguous: {versions}")
    return lo, hi


def parse_file(path):
    text = open(path).read()
    field_types = {}
    for m in re.finditer(r"pub struct (\w+) \{(.*?)\n\}", text, re.S):
        fields = dict(re.findall(r"pub (\w+): ([^\n]+),", m.group(2)))
        field_types[m.group(1)] = fields
    structs = {}
    for m in re.finditer(r"impl Decodable for (\w+) \{", text):
        name = m.group(1)
        body = text[m.end():matching_brace(text, m.end() - 1)]
        ranged = re.search(r"if version < (\d+) \|\| version > (\d+)", body)
        if ranged:
            lo, hi = map(int, ranged.groups())
        else:
            lo = hi = int(re.search(r"if version != (\d+)", body).group(1))
        versions = range(lo, hi + 1)
        flex = re.search(r"if version >= (\d+) \{\s*let num_tagged_fields", body)
        if flex:
            flexible_from = int(flex.group(1))
        elif "let num_tagged_fields" in body:
            flexible_from = lo  # every version is flexible
        else:
            flexible_from = None

        def element(field):
            rust_type = field_types[name][field]
            inner = [t for t in re.findall(r"\w+", rust_type) if t in field_types]
            return inner[-1] if inner else None

        fields = []
        pos = 0
        tag_block = body.find("let num_tagged_fields")
        plain = body if tag_block < 0 else body[:tag_block]
        for sm in re.finditer(r"let (\w+) = ", plain):
            field = sm.group(1)
            if field == "mut" or field not in field_types[name]:
                continue
            start = sm.end()
            # the statement ends at the first `;` outside braces
            depth, i = 0, start
            while True:
                c = plain[i]
                if c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                elif c == ";" and depth == 0:
                    break
                i += 1
            tree = parse_expr(plain[start:i])
            fields.append((field, None, tree))
        if tag_block >= 0:
            match = body.find("match tag {", tag_block)
            if match >= 0:
                block = body[match + len("match tag {"):matching_brace(body, match + len("match tag {") - 1)]
                for am in re.finditer(r"\n\s*(\d+) => \{", block):
                    arm_end = matching_brace(block, am.end() - 1)
                    arm = block[am.end():arm_end]
                    field = re.search(r"(\w+) = types::", arm).group(1)
                    tree = parse_expr(arm.replace(f"{field} = ", "", 1))
                    fields.append((field, int(am.group(1)), tree))
        out = []
        for field, tag, tree in fields:
            present = {}
            for v in versions:
                if tag is not None and (flexible_from is None or v < flexible_from):
                    continue
                d = eval_tree(tree, v)
                if d is not None:
                    present[v] = type_of(d, element(field))
            if not present:
                continue
            kinds = set(map(repr, present.values()))
            if len(kinds) != 1:
                raise ValueError(f"{name}.{field} changes type: {kinds}")
            flo, fhi = contiguous(list(present))
            out.append((field, tag, next(iter(present.values())), flo, fhi))
        structs[name] = (lo, hi, flexible_from, out)
    return structs


def const_name(struct):
    return snake(struct).upper()


def rust_type(ty):
    if isinstance(ty, str):
        return f"Ty::{ty}"
    kind, inner = ty
    if kind == "Array":
        return f"Ty::Array(&{rust_type(inner)})"
    return f"Ty::{kind}(&{const_name(inner)})"


def main():
    directory, version = crate_dir()
    out = [
        "//! Request schemas for the frame walker, one module per API.",
        "//!",
        f"//! Generated by `scripts/gen_request_schemas.py` from the decoders of",
        f"//! kafka-protocol {version}; do not edit by hand.",
        "",
        "use super::walk::{Field, RequestSchema, StructSchema, Ty};",
        "",
    ]
    table = []
    for api in APIS:
        path = os.path.join(directory, "src/messages", snake(api) + "_request.rs")
        structs = parse_file(path)
        root = api + "Request"
        module = snake(api)
        out.append(f"pub mod {module} {{")
        out.append("    use super::*;")
        for name, (lo, hi, flex, fields) in structs.items():
            out.append(f"    pub static {const_name(name)}: StructSchema = StructSchema {{")
            out.append(f'        name: "{name}",')
            out.append(f"        flexible_from: {flex if flex is not None else 'i16::MAX'},")
            out.append("        fields: &[")
            for field, tag, ty, flo, fhi in fields:
                out.append(
                    f'            Field {{ name: "{field}", versions: ({flo}, {fhi}), '
                    f"tag: {'Some(%d)' % tag if tag is not None else 'None'}, ty: {rust_type(ty)} }},"
                )
            out.append("        ],")
            out.append("    };")
        lo, hi = structs[root][0], structs[root][1]
        out.append(f"    pub static REQUEST: RequestSchema = RequestSchema {{")
        out.append(f"        api_key: kafka_protocol::messages::ApiKey::{api},")
        out.append(f"        versions: ({lo}, {hi}),")
        out.append(f"        body: &{const_name(root)},")
        out.append("    };")
        out.append("}")
        out.append("")
        table.append(f"    &{module}::REQUEST,")
    out.append("/// Every request schema the walker knows.")
    out.append("pub static ALL: &[&RequestSchema] = &[")
    out.extend(table)
    out.append("];")
    with open(OUT, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
