"""The location service: bindings per AOR, expiry, write-back change tracking."""

from pbx.cluster import bindings_note, read_bindings_note
from pbx.location import LocationService, binding_id, path_routes, reach
from pbx.sip.flow import Flow
from pbx.location import Binding


def binding(aor: str, contact: str, expires_at: float, q: float = 1.0) -> Binding:
    return Binding(
        id=binding_id(aor, contact), aor=aor, contact=contact, expires_at=expires_at,
        call_id="c", cseq=1, q=q, source_transport="UDP", source_host="127.0.0.1", source_port=5060,
    )


def test_lookup_orders_by_q_and_hides_expired() -> None:
    location = LocationService()
    location.put(binding("sip:1@x", "sip:a@h", 100, q=0.5))
    location.put(binding("sip:1@x", "sip:b@h", 200, q=0.9))
    location.put(binding("sip:1@x", "sip:c@h", 50))
    assert [b.contact for b in location.lookup("sip:1@x", now=60)] == ["sip:b@h", "sip:a@h"]
    assert len(location) == 3


def test_expire_drops_only_due_bindings_and_refresh_wins() -> None:
    location = LocationService()
    location.put(binding("sip:1@x", "sip:a@h", 100))
    location.put(binding("sip:1@x", "sip:a@h", 300))  # refreshed before expiry
    location.put(binding("sip:2@x", "sip:b@h", 150))
    assert location.next_expiry() == 100
    assert location.expire(now=120) == []
    dropped = location.expire(now=200)
    assert [b.aor for b in dropped] == ["sip:2@x"]
    assert len(location) == 1
    location.expire(now=400)
    assert len(location) == 0 and location.lookup("sip:1@x", 0) == []


def test_changes_are_taken_once_and_removals_tracked() -> None:
    location = LocationService()
    location.put(binding("sip:1@x", "sip:a@h", 100))
    location.put(binding("sip:1@x", "sip:b@h", 100))
    upserts, removals = location.take_changes()
    assert len(upserts) == 2 and removals == []
    assert location.take_changes() == ([], [])
    location.remove_all("sip:1@x")
    upserts, removals = location.take_changes()
    assert upserts == [] and sorted(removals) == sorted(
        [binding_id("sip:1@x", "sip:a@h"), binding_id("sip:1@x", "sip:b@h")]
    )


def test_failed_write_is_restored_unless_superseded() -> None:
    location = LocationService()
    old = binding("sip:1@x", "sip:a@h", 100)
    location.put(old)
    upserts, removals = location.take_changes()
    newer = binding("sip:1@x", "sip:a@h", 200)
    location.put(newer)
    location.take_changes()
    location.restore_changes(upserts, removals)  # the old write failed after the newer one was taken
    assert location.take_changes() == ([], [])


def test_another_nodes_saved_bindings_replace_ours_but_not_our_unsaved_changes() -> None:
    location = LocationService()
    location.put(binding("sip:1@x", "sip:gone@h", 100))  # saved here, then removed there
    location.put(binding("sip:1@x", "sip:kept@h", 100))
    location.take_changes()
    location.put(binding("sip:1@x", "sip:kept@h", 500))  # our refresh, not yet written
    location.put(binding("sip:3@x", "sip:other@h", 100))
    location.take_changes()
    location.remove("sip:3@x", binding_id("sip:3@x", "sip:other@h"))  # our removal, unwritten
    saved = [binding("sip:1@x", "sip:kept@h", 300), binding("sip:1@x", "sip:new@h", 300),
             binding("sip:2@x", "sip:moved@h", 300), binding("sip:3@x", "sip:other@h", 100)]
    location.put(binding("sip:1@x", "sip:kept@h", 500))
    location.follow(["sip:1@x", "sip:2@x", "sip:3@x"], saved)
    assert {(b.contact, b.expires_at) for b in location.lookup("sip:1@x", 0)} == {
        ("sip:kept@h", 500), ("sip:new@h", 300)}
    assert [b.contact for b in location.lookup("sip:2@x", 0)] == ["sip:moved@h"]
    assert location.lookup("sip:3@x", 0) == []
    assert len(location) == 3
    upserts, removals = location.take_changes()  # only our own changes are written
    assert [b.contact for b in upserts] == ["sip:kept@h"]
    assert removals == [binding_id("sip:3@x", "sip:other@h")]
    # theirs expire at their time, ours at ours
    assert sorted(b.contact for b in location.expire(now=400)) == ["sip:moved@h", "sip:new@h"]
    assert [b.contact for b in location.expire(now=600)] == ["sip:kept@h"]


def test_a_note_naming_every_aor_reads_them_all() -> None:
    location = LocationService()
    location.put(binding("sip:1@x", "sip:a@h", 100))
    location.take_changes()
    location.follow(None, [binding("sip:2@x", "sip:b@h", 100)])
    assert len(location) == 2  # with no names, nothing of ours is dropped


def test_bindings_notes_name_the_aors_until_they_would_be_too_long() -> None:
    note = bindings_note("host/42", {"sip:2@x", "sip:1@x"})
    assert note == "host/42\nsip:1@x\nsip:2@x"
    assert read_bindings_note(note) == ("host/42", ["sip:1@x", "sip:2@x"])
    many = bindings_note("host/42", {f"sip:{n}@example.com" for n in range(1000)})
    assert read_bindings_note(many) == ("host/42", None)


def test_refreshes_do_not_grow_the_expiry_heap_without_bound() -> None:
    location = LocationService()
    for i in range(10_000):
        location.put(binding("sip:1@x", "sip:a@h", 1000 + i))
    assert len(location._expiry) < 4 * len(location) + 65


def test_a_device_registered_through_an_edge_proxy_is_reached_through_it() -> None:
    """RFC 3327: the Path Kamailio added becomes the Route of requests to the
    phone, which go to the proxy, not to the phone's own address."""
    phone = binding("sip:1001@acme.test", "sip:1001@192.0.2.7:5062", 100.0)
    phone.source_host, phone.source_port = "192.0.2.7", 5062
    assert reach(phone, "192.0.2.7", 5062) == Flow("UDP", "192.0.2.7", 5062)
    assert path_routes(phone) == []
    phone.source_host, phone.source_port = "198.51.100.5", 5070
    phone.path = "<sip:198.51.100.5:5060;lr;received=sip:192.0.2.7:5062>"
    assert reach(phone, "192.0.2.7", 5062) == Flow("UDP", "198.51.100.5", 5060)
    assert path_routes(phone) == [phone.path]
    phone.source_transport, phone.source_port = "TCP", 5060
    phone.path = "<sip:198.51.100.5:5060;transport=tcp;lr>, <sip:203.0.113.1;lr>"
    assert reach(phone, "192.0.2.7", 5062) == Flow("TCP", "198.51.100.5", 5060)  # its connection
