#!/usr/bin/env python3
"""Writes the hand-made seed inputs of each fuzz target into corpus/<target>/
(seed-*): valid messages, a real-looking SDP offer, and op sequences that
reach the hub's deep states. scripts/fuzz.sh grows the corpus from them."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))

CLIENT = [
    '{"type":"hello","version":2,"name":"Alice"}',
    '{"type":"hello","version":2,"name":"Bob","password":"pw","token":"t"}',
    '{"type":"join","channel":"ops"}',
    '{"type":"leave","channel":"ops"}',
    '{"type":"floor_request","channel":"ops","priority":128,"queue":true}',
    '{"type":"floor_request","channel":"ops"}',
    '{"type":"floor_release","channel":"ops"}',
    '{"type":"list_channels"}',
    '{"type":"emergency","channel":"ops"}',
    '{"type":"emergency_cancel","channel":"ops","originator":3}',
    '{"type":"emergency_ack","channel":"ops","originator":3}',
    '{"type":"patch","channels":["ops","fire"]}',
    '{"type":"unpatch","channel":"ops"}',
    '{"type":"mute","channel":"ops","muted":true}',
    '{"type":"offer","sdp":"v=0"}',
]
SERVER = [
    '{"type":"welcome","version":2,"client_id":1,"max_talk_ms":60000}',
    '{"type":"joined","channel":"ops","members":[{"id":1,"name":"A"}],"mid":"1"}',
    '{"type":"floor_granted","channel":"ops","max_duration_ms":60000}',
    '{"type":"floor_deny","channel":"ops","reason":"busy"}',
    '{"type":"error","code":"malformed_message","message":"x"}',
]

FP = ":".join(f"{i * 7 % 256:02X}" for i in range(32))
OFFER = "\r\n".join([
    "v=0",
    "o=- 4215775240449105457 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0",
    "a=msid-semantic: WMS",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111",
    "c=IN IP4 0.0.0.0",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=ice-ufrag:UuMJ",
    "a=ice-pwd:oHeLSQbVsCkWkQfLFzWRmDRU",
    "a=ice-options:trickle",
    f"a=fingerprint:sha-256 {FP}",
    "a=setup:actpass",
    "a=mid:0",
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "a=sendrecv",
    "a=msid:- audio0",
    "a=rtcp-mux",
    "a=rtpmap:111 opus/48000/2",
    "a=fmtp:111 minptime=10;useinbandfec=1",
    "a=ssrc:3735928559 cname:squawk",
    "",
])


def text(s):
    """The harnesses' length-prefixed text: one byte of length / 4."""
    b = s.encode()
    b += b" " * (-len(b) % 4)
    assert len(b) <= 1020, len(b)
    return bytes([len(b) // 4]) + b


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"seed-{name}"), "wb") as f:
        f.write(data)


def main():
    for i, m in enumerate(CLIENT + SERVER):
        write("signaling", f"{i:02}", m.encode())
    # sdp: op 0 = offer, 3 = add track (channel op>>3), 2 = answer, 4 = remove.
    write("sdp", "offer", bytes([0]) + text(OFFER))
    write("sdp", "offer-track", bytes([0]) + text(OFFER) + bytes([3, 3 | 8]))
    write("sdp", "track-offer", bytes([3]) + bytes([0]) + text(OFFER) + bytes([2]) + text("v=0"))
    write("sdp", "remove", bytes([0]) + text(OFFER) + bytes([3, 4, 3]))
    for i in range(6):
        write("sdp", f"garbage{i}", bytes([i % 5]) + text(OFFER[: 40 * (i + 1)]))
    # session: op = who << 4 | kind (0-3 frame, 4 hello, 5-8 built message,
    # 9 disconnect, 10 time, 11-12 track ready, 13 link, 14 sdp error, 15 sdp).
    # A built message is kind byte (0 join, 1 leave, 2 floor request, 3
    # release, 4 list, 5 emergency, 6 cancel, 7 ack, 8 patch, 9 unpatch, 10
    # mute, 11 offer, 12 answer) and an argument byte (channel arg % 3: 0 ops,
    # 1 fire, 2 ems; bit 0 queue/muted; bit 3 cancel's originator; high
    # nibble a priority or another client).
    msg = lambda who, kind, arg: bytes([who << 4 | 5, kind, arg])
    offer = lambda who: bytes([who << 4 | 5, 11, 0, 0])
    ready = bytes([11, 0])
    link = lambda who: bytes([who << 4 | 13, 1])

    def online(who, *channels):
        """hello, joins, an (empty) offer, each track ready, link up."""
        b = bytes([who << 4 | 4])
        for c in channels:
            b += msg(who, 0, c)
        return b + offer(who) + ready * len(channels) + link(who)

    base = online(0, 0) + online(1, 0)
    write("session", "late-entry", base + msg(0, 2, 0) + bytes([10, 5]) + online(2, 0))
    write("session", "queue", base + msg(0, 2, 3) + msg(1, 2, 3) + bytes([10, 40]) + msg(0, 3, 0))
    write("session", "preempt", base + msg(0, 2, 0) + msg(1, 2, 0x80 | 3) + bytes([10, 3]))
    write("session", "emergency", base + msg(0, 5, 0) + msg(1, 7, 0) + msg(1, 2, 0) + msg(0, 6, 9))
    write("session", "patch", online(0, 0, 1) + online(1, 1) + msg(0, 8, 0) + msg(1, 2, 1) + msg(0, 9, 0))
    write("session", "mute", base + msg(1, 10, 3) + msg(0, 2, 0) + msg(1, 10, 0))
    write("session", "leave", base + msg(0, 2, 0) + msg(0, 1, 0) + bytes([1 << 4 | 9]))
    write("session", "json", bytes([0]) + text(CLIENT[0]) + bytes([1]) + text(CLIENT[2]) + offer(0) + ready + link(0))
    write("session", "json-bad", bytes([0]) + text('{"type":"join"}') + bytes([2]) + text("[]"))
    write("session", "timeout", base + msg(0, 2, 0) + bytes([10, 255, 10, 255]))
    write("session", "link", base + msg(0, 2, 0) + bytes([13, 0, 14, 15, 1]) + text(OFFER[:100]))
    write("session", "rejoin", base + msg(0, 0, 0) + msg(0, 1, 0) + msg(0, 0, 0) + ready)
    # rewrite: initial seq (2) + ts (4), then op (dt<<4 | marker<<2 | ssrc) seq ts.
    def pkt(op, seq, ts):
        return bytes([op]) + seq.to_bytes(2, "little") + ts.to_bytes(4, "little")
    head = (1000).to_bytes(2, "little") + (5000).to_bytes(4, "little")
    for i in range(10):
        body = b"".join(pkt((2 << 4) | (j // 5 % 2 if i % 2 else 0), (65530 + j * (i + 1)) % 65536, j * 960)
                        for j in range(20))
        write("rewrite", f"{i:02}", head + body + (b"\x0f" if i % 3 == 0 else b""))
    # jitter: 6 bytes of config, then op (dt<<3 | kind: <3 pop, else push + seq, ts).
    cfg = bytes([19, 20, 44, 1, 20, 75])
    for i in range(10):
        ops = b""
        for j in range(40):
            if j % 2 == 0 or (i > 5 and j % 7 == 0):
                seq = (j // 2 + (3 if i == 3 and j == 10 else 0)) % 65536
                ops += bytes([(20 - (i % 4) * 5) << 3 | 3]) + seq.to_bytes(2, "little") + (seq * 960).to_bytes(4, "little")
            else:
                ops += bytes([0])
        write("jitter", f"{i:02}", cfg + ops)
    # red: levels (1), then packets: seq (2) ts (4) length (1) and a RED
    # payload (RFC 2198) of up to `levels` earlier frames, some packets lost.
    def red(pt, primary, blocks):
        heads = b"".join(bytes([0x80 | pt, off >> 6, ((off & 0x3f) << 2) | (len(b) >> 8), len(b) & 0xff])
                         for off, b in blocks)
        return heads + bytes([pt]) + b"".join(b for _, b in blocks) + primary
    for i in range(10):
        levels = i % 4
        body = b""
        sent = []
        for j in range(24):
            seq = (65520 + j) % 65536
            ts = (j * 960 + (19200 if i == 5 and j > 10 else 0)) % 2**32
            frame = bytes([j]) * (8 + j % 5)
            blocks = [(d * 960, sent[-d][1]) for d in range(min(levels, len(sent)), 0, -1)]
            sent.append((seq, frame))
            payload = red(111 if i != 7 else 0, frame, blocks)
            if (j * (i + 3)) % 7 == 0:
                continue  # lost
            body += seq.to_bytes(2, "little") + ts.to_bytes(4, "little") + bytes([len(payload)]) + payload
        write("red", f"{i:02}", bytes([levels]) + body)


if __name__ == "__main__":
    main()
