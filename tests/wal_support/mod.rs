//! Helpers shared by the WAL scenario tests: a glommio executor that fits this machine's
//! 8 MiB RLIMIT_MEMLOCK, and small segments so a few records span several of them.
#![allow(dead_code)]

use corepax::runtime::wal::WalOptions;
use std::future::Future;

/// io_memory small enough to be locked under an 8 MiB RLIMIT_MEMLOCK (glommio's
/// default of 10 MiB is not).
pub const IO_MEMORY_BYTES: usize = 1 << 20;

/// Runs `fut` to completion on a fresh glommio executor.
pub fn run<T>(fut: impl Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::default()
        .io_memory(IO_MEMORY_BYTES)
        .make()
        .expect("glommio executor starts")
        .run(fut)
}

/// Options with 64 KiB segments (15 blocks of records each).
pub fn small_opts() -> WalOptions {
    WalOptions {
        segment_bytes: 64 << 10,
        write_bytes_max: 16 << 10,
        pending_bytes_max: 1 << 20,
        segments_free_max: 4,
        sync: true,
    }
}

/// A record whose content depends on `i`, of a length that varies with `i`.
pub fn record(i: u64) -> Vec<u8> {
    let len = 50 + (i * 37 % 700) as usize;
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

/// Whether some file in `dir` holds `bytes` (read through the page cache): a record the
/// WAL handed to the kernel shows up there.
pub fn on_file(dir: &std::path::Path, bytes: &[u8]) -> bool {
    std::fs::read_dir(dir).expect("read_dir").any(|e| {
        let data = std::fs::read(e.expect("entry").path()).unwrap_or_default();
        data.windows(bytes.len()).any(|w| w == bytes)
    })
}

/// Path of segment file `index` in `dir`.
pub fn segment_file(dir: &std::path::Path, index: u32) -> std::path::PathBuf {
    dir.join(format!("seg-{index:06}.wal"))
}

/// Where records of the given payload lengths land, by the documented format: a 4 KiB
/// header block, then 32-byte record headers with payloads packed; a record that does not
/// fit starts the next segment life. Returns (life number from 0, byte offset) per record.
pub fn layout(lens: &[usize], segment_bytes: u64) -> Vec<(usize, u64)> {
    let mut out = Vec::with_capacity(lens.len());
    let mut life = 0;
    let mut pos = 4096u64;
    for &len in lens {
        let need = 32 + len as u64;
        if pos + need > segment_bytes {
            life += 1;
            pos = 4096;
        }
        out.push((life, pos));
        pos += need;
    }
    out
}

/// Reads the `seq` in a segment file's header (bytes 16..24 of block 0).
pub fn header_seq(path: &std::path::Path) -> u64 {
    let bytes = std::fs::read(path).expect("read segment");
    u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"))
}

/// Flips one bit of the byte at `offset` of `path`.
pub fn flip_byte(path: &std::path::Path, offset: u64) {
    xor_byte(path, offset, 0x04);
}

/// XORs the byte at `offset` of `path` with `mask`.
pub fn xor_byte(path: &std::path::Path, offset: u64, mask: u8) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open segment");
    let mut b = [0u8; 1];
    file.read_exact_at(&mut b, offset).expect("read byte");
    b[0] ^= mask;
    file.write_all_at(&b, offset).expect("write byte");
    file.sync_all().expect("sync");
}
