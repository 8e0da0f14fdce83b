#!/usr/bin/python3
"""Seed corpus for tests/fuzz/fuzz_frame.c, written from docs/protocol.md by
hand (independent of the C encoder). Input = mode byte || TCP stream."""
import os, struct, sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)

def u(v):
    if v < 0x80: return bytes([v])
    if v < 0x100: return b'\xcc' + bytes([v])
    if v < 0x10000: return b'\xcd' + struct.pack('>H', v)
    if v < 0x100000000: return b'\xce' + struct.pack('>I', v)
    return b'\xcf' + struct.pack('>Q', v)

def s(t):
    b = t.encode() if isinstance(t, str) else t
    n = len(b)
    if n < 32: h = bytes([0xa0 | n])
    elif n < 0x100: h = b'\xd9' + bytes([n])
    elif n < 0x10000: h = b'\xda' + struct.pack('>H', n)
    else: h = b'\xdb' + struct.pack('>I', n)
    return h + b

def bn(b):
    n = len(b)
    if n < 0x100: h = b'\xc4' + bytes([n])
    elif n < 0x10000: h = b'\xc5' + struct.pack('>H', n)
    else: h = b'\xc6' + struct.pack('>I', n)
    return h + b

def arr(*items):
    n = len(items)
    h = bytes([0x90 | n]) if n < 16 else b'\xdc' + struct.pack('>H', n)
    return h + b''.join(items)

K32, K32b, SIG, UID, ROUTE = b'\x11' * 32, b'\x22' * 32, b'\x33' * 64, b'\x55' * 20, b'\x77' * 32
TOK = 'eyJhbGciOiJFUzI1NiJ9.' + 'x' * 200 + '.sig'
frames = {
    'register': arr(u(1), s('alice'), bn(K32), bn(K32b), bn(SIG), bn(SIG)),
    'auth': arr(u(2), s(TOK), bn(SIG)),
    'renew': arr(u(3), bn(SIG)),
    'lookup_name': arr(u(4), s('b\u00e9b')),
    'lookup_uid': arr(u(5), bn(UID)),
    'route_open': arr(u(6), bn(ROUTE)),
    'route_close': arr(u(7), bn(ROUTE)),
    'group_send': arr(u(8), u(300), bn(ROUTE), bn(b'\xab' * 300)),
    'direct': arr(u(9), u(1), bn(UID), bn(b'\xcd' * 40)),
    'ping': arr(u(10), u(2**40)),
    'token': arr(u(64), s(TOK)),
    'auth_ok': arr(u(65), bn(UID), u(1700000000)),
    'lookup_result': arr(u(66), arr(s(TOK), s('t2'))),
    'lookup_result_empty': arr(u(66), arr()),
    'deliver': arr(u(67), bn(ROUTE), bn(b'\x01' * 20)),
    'direct_deliver': arr(u(68), bn(UID), s(TOK), bn(b'\x02' * 33)),
    'presence': arr(u(69), bn(ROUTE), bn(UID), b'\xc3'),
    'relayed': arr(u(70), u(300)),
    'error': arr(u(71), u(5), u(300)),
    'pong': arr(u(72), u(0)),
    'bye': arr(u(73), u(1)),
}

def pre(m): return struct.pack('>I', len(m)) + m

def pad(body):
    n = 2 + len(body)
    total = min((n + 255) // 256 * 256, 65519)
    return struct.pack('>H', len(body)) + body + b'\0' * (total - n)

def pack(bodies):
    recs = b''.join(struct.pack('>H', len(b)) + b for b in bodies)
    total = min((len(recs) + 255) // 256 * 256, 65519)
    return recs + b'\0' * (total - len(recs))

def write(name, data):
    with open(os.path.join(out, name), 'wb') as f:
        f.write(data)

for name, body in frames.items():
    write('valid_' + name, b'\0' + pre(body))
    write('padded_' + name, b'\0' + pre(pad(body)))
write('stream_all_chunked', b'\x07' + b''.join(pre(b) for b in frames.values()))
write('stream_all_bytewise', b'\x01' + b''.join(pre(pad(b)) for b in frames.values()))
# several frames packed in one plaintext (docs/protocol.md 1.3)
write('packed_all', b'\0' + pre(pack(list(frames.values()))))
write('packed_relay_acks', b'\0' + pre(pack([frames['relayed'], frames['pong'], frames['deliver']])))

bad = {
    'a1_empty_prefix': b'\0\0\0\0' + pre(frames['ping']),
    'a2_max_plus_1': b'\x00\x01\x00\x00' + b'\0' * 16,
    'a3_ffffffff': b'\xff\xff\xff\xff',
    'a4_half_frame': pre(frames['group_send'])[:200],
    'a6_coalesced': pre(frames['ping']) + pre(frames['relayed']) + pre(frames['bye'])[:5],
    'a7_array32': pre(b'\xdd\xff\xff\xff\xff'),
    'a7_map32': pre(b'\xdf\xff\xff\xff\xff'),
    'a8_array_bomb': pre(b'\xdd\x00\x10\x00\x00\xc0'),
    'a9_depth9': pre(b'\x91' * 9 + b'\xc0'),
    'a9_depth33': pre(b'\x91' * 33 + b'\xc0'),
    'a9_depth1000': pre(b'\x91' * 1000 + b'\xc0'),
    'a9_depth_in_list': pre(b'\x92\x42' + b'\x91' * 8 + b'\xa1a'),
    'a10_str_past_end': pre(b'\x92\x04\xa5abc'),
    'a10_bin_past_end': pre(b'\x92\x05\xc6\xff\xff\xff\xff'),
    'a11_float_ref': pre(b'\x92\x46\xcb' + b'\x3f\xf0' + b'\0' * 6),
    'a11_negative_ref': pre(b'\x92\x46\xff'),
    'a11_nil_field': pre(b'\x92\x03\xc0'),
    'a11_ref_zero': pre(b'\x94\x08\x00' + bn(ROUTE) + bn(b'x')),
    'a11_noncanon_uint': pre(b'\x92\x0a\xcd\x00\x05'),
    'a11_noncanon_int': pre(b'\x92\x0a\xd0\x05'),
    'a11_noncanon_str': pre(b'\x92\x04\xd9\x05alice'),
    'a11_noncanon_bin': pre(b'\x92\x05\xc5\x00\x14' + UID),
    'a11_noncanon_array': pre(b'\xdc\x00\x02\x0a\x05'),
    'a11_short_sig': pre(b'\x92\x03\xc4\x3f' + b'\x44' * 63),
    'a11_unknown_type': pre(b'\x92\x0b\x05'),
    'a12_map': pre(b'\x82\xa4type\x0a\xa5nonce\x05'),
    'a13_trailing': pre(frames['ping'] + b'\x00'),
    'a14_nul_name': pre(b'\x92\x04\xa3b\x00b'),
    'a14_overlong': pre(b'\x92\x04\xa2\xc0\x80'),
    'a14_surrogate': pre(b'\x92\x04\xa3\xed\xa0\x80'),
    'a14_above_max': pre(b'\x92\x04\xa4\xf4\x90\x80\x80'),
    'bad_padding': pre(struct.pack('>H', 3) + frames['ping'] + b'\0' * 250 + b'\x01'),
    'bad_packed_overrun': pre((struct.pack('>H', len(frames['ping'])) + frames['ping']
                               + struct.pack('>H', 300)).ljust(256, b'\0')),
    'bad_packed_overpadded': pre(pack([frames['ping'], frames['pong']]) + b'\0' * 256),
}
for name, data in bad.items():
    write(name, b'\0' + data)
print(len(frames) * 2 + 4 + len(bad), 'files')
