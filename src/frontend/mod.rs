//! RESP listener: decode, route to the owning shard, reply.
