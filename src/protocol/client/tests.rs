//! The client path's retry rules, input by input.

use bytes::Bytes;

use super::*;

const MS: Nanos = NS_PER_MS;
const TIMEOUT: Nanos = 3_000 * MS;

fn path(mode: ReadMode) -> ClientPath {
    ClientPath::new(ReplicaId(0), 7, mode, TIMEOUT)
}

fn leading() -> LeaderView {
    LeaderView {
        leading: true,
        hint: Some(ReplicaId(0)),
    }
}

fn follower_of(l: u8) -> LeaderView {
    LeaderView {
        leading: false,
        hint: Some(ReplicaId(l)),
    }
}

const NO_LEADER: LeaderView = LeaderView {
    leading: false,
    hint: None,
};

fn set() -> Command {
    Command::Set(Bytes::from_static(b"k"), Bytes::from_static(b"v"))
}

fn get() -> Command {
    Command::Get(Bytes::from_static(b"k"))
}

fn outputs(p: &mut ClientPath) -> Vec<ClientOutput> {
    std::iter::from_fn(|| p.pop_output()).collect()
}

/// The one proposal among `out`: its token and request.
fn proposed(out: &[ClientOutput]) -> (Token, Request) {
    let props: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            ClientOutput::Propose { token, req } => Some((*token, req.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(props.len(), 1, "one proposal in {out:?}");
    props[0].clone()
}

/// The one forward among `out`: its destination, id and request.
fn forwarded(out: &[ClientOutput]) -> (ReplicaId, u64, Request) {
    let fwds: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            ClientOutput::Forward { to, id, req } => Some((*to, *id, req.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(fwds.len(), 1, "one forward in {out:?}");
    fwds[0].clone()
}

fn wakes(out: &[ClientOutput]) -> Vec<Nanos> {
    out.iter()
        .filter_map(|o| match o {
            ClientOutput::Wake { at } => Some(*at),
            _ => None,
        })
        .collect()
}

#[test]
fn a_leader_proposes_at_once_and_finishes_with_the_cores_answer() {
    let mut p = path(ReadMode::Log);
    let h = p.submit(0, set(), leading());
    let out = outputs(&mut p);
    assert_eq!(out.len(), 1, "no timer for a local proposal: {out:?}");
    let (token, req) = proposed(&out);
    assert_eq!((token, req.client, req.seq, req.ack_floor), (h, 7, 1, 1));
    p.on_core_reply(MS, token, ClientReply::Done(Reply::Ok), leading());
    assert_eq!(
        outputs(&mut p),
        vec![ClientOutput::Finish {
            handle: h,
            result: Ok(Reply::Ok)
        }]
    );
    assert_eq!(p.in_progress(), 0);
}

#[test]
fn the_ack_floor_is_the_lowest_outstanding_sequence_number() {
    let mut p = path(ReadMode::Log);
    let _ = p.submit(0, set(), leading());
    let (t1, _) = proposed(&outputs(&mut p));
    let _ = p.submit(0, set(), leading());
    let (t2, r2) = proposed(&outputs(&mut p));
    assert_eq!((r2.seq, r2.ack_floor), (2, 1));
    p.on_core_reply(MS, t2, ClientReply::Done(Reply::Ok), leading());
    let _ = p.submit(0, set(), leading());
    let (_, r3) = proposed(&outputs(&mut p));
    assert_eq!((r3.seq, r3.ack_floor), (3, 1), "seq 1 is still outstanding");
    p.on_core_reply(MS, t1, ClientReply::Done(Reply::Ok), leading());
    let _ = p.submit(0, set(), leading());
    let (_, r4) = proposed(&outputs(&mut p));
    assert_eq!((r4.seq, r4.ack_floor), (4, 3));
}

#[test]
fn a_follower_forwards_and_resends_with_doubling_waits_then_at_once_to_a_new_leader() {
    let mut p = path(ReadMode::Log);
    let h = p.submit(0, set(), follower_of(1));
    let out = outputs(&mut p);
    let (to, id1, req) = forwarded(&out);
    assert_eq!((to, req.seq), (ReplicaId(1), 1));
    assert_eq!(wakes(&out), vec![FORWARD_RETRY_NS]);
    p.tick(FORWARD_RETRY_NS - 1, follower_of(1));
    assert_eq!(outputs(&mut p), vec![], "resent before its wait");
    p.tick(FORWARD_RETRY_NS, follower_of(1));
    let out = outputs(&mut p);
    let (_, id2, again) = forwarded(&out);
    assert_ne!(id1, id2, "each attempt has its own id");
    assert_eq!(again.seq, 1, "the same sequence number: at most once");
    assert_eq!(wakes(&out), vec![3 * FORWARD_RETRY_NS], "the wait doubled");
    // A late answer to the first attempt is dropped.
    p.on_forward_reply(MS, id1, ClientReply::Done(Reply::Ok), follower_of(1));
    assert_eq!(outputs(&mut p), vec![]);
    // The leader changes: resent at once, to the new one, with the shortest wait.
    let now = FORWARD_RETRY_NS + 10 * MS;
    p.observe(now, follower_of(2));
    let out = outputs(&mut p);
    let (to, id3, _) = forwarded(&out);
    assert_eq!(to, ReplicaId(2));
    assert_eq!(wakes(&out), vec![now + FORWARD_RETRY_NS]);
    p.on_forward_reply(now, id3, ClientReply::Done(Reply::Ok), follower_of(2));
    assert_eq!(
        outputs(&mut p),
        vec![ClientOutput::Finish {
            handle: h,
            result: Ok(Reply::Ok)
        }]
    );
}

#[test]
fn refusals_back_off_by_their_kind() {
    for (reply, backoff) in [
        (ClientReply::Busy, BUSY_BACKOFF_NS),
        (
            ClientReply::NotLeader { leader: None },
            NOT_LEADER_BACKOFF_NS,
        ),
    ] {
        let mut p = path(ReadMode::Log);
        let _ = p.submit(0, set(), leading());
        let (token, _) = proposed(&outputs(&mut p));
        p.on_core_reply(MS, token, reply.clone(), leading());
        assert_eq!(
            outputs(&mut p),
            vec![ClientOutput::Wake { at: MS + backoff }]
        );
        p.tick(MS + backoff - 1, leading());
        assert_eq!(outputs(&mut p), vec![], "{reply:?}: retried early");
        p.tick(MS + backoff, leading());
        let (again, req) = proposed(&outputs(&mut p));
        assert_ne!(again, token);
        assert_eq!(req.seq, 1);
    }
}

#[test]
fn without_a_leader_it_waits_for_one() {
    let mut p = path(ReadMode::Log);
    let _ = p.submit(0, set(), NO_LEADER);
    assert_eq!(
        outputs(&mut p),
        vec![ClientOutput::Wake {
            at: NO_LEADER_BACKOFF_NS
        }]
    );
    p.tick(NO_LEADER_BACKOFF_NS, NO_LEADER);
    assert_eq!(wakes(&outputs(&mut p)), vec![2 * NO_LEADER_BACKOFF_NS]);
    p.tick(2 * NO_LEADER_BACKOFF_NS, follower_of(2));
    let (to, _, _) = forwarded(&outputs(&mut p));
    assert_eq!(to, ReplicaId(2));
}

#[test]
fn an_unanswered_command_times_out_at_its_deadline() {
    let mut p = path(ReadMode::Log);
    let h = p.submit(0, set(), leading());
    let _ = outputs(&mut p);
    p.tick(TIMEOUT - 1, leading());
    assert_eq!(outputs(&mut p), vec![]);
    p.tick(TIMEOUT, leading());
    assert_eq!(
        outputs(&mut p),
        vec![ClientOutput::Finish {
            handle: h,
            result: Err(ClientError::Timeout)
        }]
    );
    // The session forgot it: the next command's floor is its own.
    let _ = p.submit(TIMEOUT, set(), leading());
    let (_, req) = proposed(&outputs(&mut p));
    assert_eq!((req.seq, req.ack_floor), (2, 2));
}

#[test]
fn a_read_away_from_the_leader_is_tried_here_then_at_the_leader() {
    let mut p = path(ReadMode::Quorum);
    let _ = p.submit(0, get(), follower_of(1));
    let (token, _) = proposed(&outputs(&mut p));
    p.on_core_reply(
        MS,
        token,
        ClientReply::NotLeader { leader: None },
        follower_of(1),
    );
    let (to, _, req) = forwarded(&outputs(&mut p));
    assert_eq!((to, req.seq), (ReplicaId(1), 1));
    // Writes are never served here.
    let _ = p.submit(0, set(), follower_of(1));
    let _ = forwarded(&outputs(&mut p));
    // In a mode that reads at the leader, neither are reads.
    let mut p = path(ReadMode::LeaderLease);
    let _ = p.submit(0, get(), follower_of(1));
    let _ = forwarded(&outputs(&mut p));
}

/// Request 4 of session 9, another replica's, carrying `cmd`.
fn from_session_9(cmd: Command) -> Request {
    Request {
        client: 9,
        seq: 4,
        ack_floor: 4,
        cmd,
    }
}

/// `req` forwarded here from r2 as `id`: the token the core is given.
fn forward_from_r2(p: &mut ClientPath, id: u64, req: &Request, answered_there: bool) -> Token {
    p.on_forward(ReplicaId(2), id, req.clone(), answered_there);
    let (token, got) = proposed(&outputs(p));
    assert_eq!(&got, req);
    token
}

/// What goes back to r2 for its forward `id`.
fn back_to_r2(id: u64, reply: ClientReply) -> Vec<ClientOutput> {
    vec![ClientOutput::ForwardReply {
        to: ReplicaId(2),
        id,
        reply,
    }]
}

#[test]
fn a_forwarded_command_is_proposed_and_answered_to_its_sender() {
    let mut p = path(ReadMode::Log);
    let token = forward_from_r2(&mut p, 55, &from_session_9(set()), false);
    assert_eq!(token & ANSWERED_THERE, 0);
    p.on_core_reply(MS, token, ClientReply::Busy, leading());
    assert_eq!(outputs(&mut p), back_to_r2(55, ClientReply::Busy));
}

#[test]
fn a_read_answered_where_it_was_forwarded_gets_no_answer_once_logged() {
    let mut p = path(ReadMode::Log);
    let req = from_session_9(get());
    let token = forward_from_r2(&mut p, 55, &req, true);
    assert_ne!(token & ANSWERED_THERE, 0, "the core is told");
    p.on_core_reply(MS, token, ClientReply::Logged, leading());
    assert_eq!(outputs(&mut p), vec![], "nothing goes back");
    // A refusal still does.
    let token = forward_from_r2(&mut p, 56, &req, true);
    p.on_core_reply(MS, token, ClientReply::Busy, leading());
    assert_eq!(outputs(&mut p), back_to_r2(56, ClientReply::Busy));
}

#[test]
fn a_write_answered_where_it_was_forwarded_gets_no_answer_once_applied() {
    let mut p = path(ReadMode::Log);
    let req = from_session_9(set());
    let token = forward_from_r2(&mut p, 55, &req, true);
    assert_ne!(token & ANSWERED_THERE, 0, "the core is told");
    p.on_core_reply(MS, token, ClientReply::Done(Reply::Ok), leading());
    assert_eq!(outputs(&mut p), vec![], "nothing goes back");
    // A refusal still goes back, and so does an unmarked write's answer.
    let refused = ClientReply::NotLeader { leader: None };
    let token = forward_from_r2(&mut p, 56, &req, true);
    p.on_core_reply(MS, token, refused.clone(), leading());
    assert_eq!(outputs(&mut p), back_to_r2(56, refused));
    let token = forward_from_r2(&mut p, 57, &req, false);
    p.on_core_reply(MS, token, ClientReply::Done(Reply::Ok), leading());
    assert_eq!(
        outputs(&mut p),
        back_to_r2(57, ClientReply::Done(Reply::Ok))
    );
}

#[test]
fn tokens_never_carry_the_answered_there_bit_of_themselves() {
    // The session id is where tokens start: one with the top bit set.
    let mut p = ClientPath::new(ReplicaId(0), u64::MAX - 1, ReadMode::Log, TIMEOUT);
    for _ in 0..3 {
        let _ = p.submit(0, set(), leading());
        let (token, _) = proposed(&outputs(&mut p));
        assert_eq!(token & ANSWERED_THERE, 0);
    }
}

#[test]
fn too_large_and_storage_failures_finish_at_once() {
    let mut p = path(ReadMode::Log);
    let h = p.submit(0, set(), leading());
    let (token, _) = proposed(&outputs(&mut p));
    let too_large = ClientReply::TooLarge {
        bytes: 10,
        bytes_max: 5,
    };
    p.on_core_reply(MS, token, too_large, leading());
    assert_eq!(
        outputs(&mut p),
        vec![ClientOutput::Finish {
            handle: h,
            result: Err(ClientError::TooLarge {
                bytes: 10,
                bytes_max: 5
            })
        }]
    );
    let pending = p.submit(MS, set(), leading());
    let _ = outputs(&mut p);
    p.fail_storage("disk gone".into());
    let h = p.submit(MS, set(), leading());
    let storage = Err(ClientError::Storage("disk gone".into()));
    assert_eq!(
        outputs(&mut p),
        vec![ClientOutput::Finish {
            handle: h,
            result: storage.clone()
        }]
    );
    p.tick(MS + TIMEOUT, leading());
    assert_eq!(
        outputs(&mut p),
        vec![ClientOutput::Finish {
            handle: pending,
            result: storage
        }]
    );
}
