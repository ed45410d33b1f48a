//! Gives back, once the server has started, the memory that starting took and serving does not
//! hold (issue 19, idle and peak RSS).
//!
//! - The heap's free memory: migrating, building the schema and preparing the REST routes free
//!   most of what they allocate, and glibc keeps it (`malloc_trim`).
//! - The pages of the binary and its libraries that starting ran or read: the kernel maps up to
//!   16 pages around each one touched (fault-around), so starting leaves some 30 MB of a 40 MB
//!   text mapped, most of it code that runs once (migrations, schema building). Each read-only
//!   file mapping that holds no private copy of a page (so nothing in it differs from the file)
//!   is unmapped from the process (`MADV_DONTNEED`). Its pages stay in the page cache, shared
//!   and reclaimable as before; whatever a request runs is mapped again at its first use, a
//!   minor fault. This is what the kernel does by itself to clean file pages under memory
//!   pressure, done here once, at a moment when most of them are known to be cold.

/// Caps glibc's malloc arenas at one per core; called before any thread starts. glibc gives a
/// thread that meets contention an arena of its own, up to eight per core, and free memory in one
/// arena serves no other: with the runtime's workers, the hash threads and one thread per SQLite
/// connection that is a dozen partly-empty heaps (measured: about 4 MB of peak RSS through a
/// sign-in run at 64 connections, no change in `me` throughput). Without glibc it does nothing.
#[allow(unsafe_code)]
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let n = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
        // SAFETY: `mallopt` only sets a tuning value of glibc's allocator; no thread but this
        // one has started, so none has an arena yet beyond the main one.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, n);
        }
    }
}

/// What [`release_startup_memory`] gave back.
#[derive(Clone, Copy, Debug)]
pub struct Released {
    /// Read-only file mappings unmapped.
    pub mappings: usize,
    /// Resident memory before and after, in KiB (`VmRSS`).
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
}

/// Returns the heap's free memory to the system and unmaps the clean pages of the process's
/// read-only file mappings (see the module documentation). Safe at any time: nothing it
/// unmaps differs from the file, so what is used again is read back as it was. With
/// [`limit_malloc_arenas`], the only `unsafe` of the workspace: these calls into the C library
/// have no safe API.
#[allow(unsafe_code)]
pub fn release_startup_memory() -> Released {
    let rss_before_kib = status_kib("VmRSS:");
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free memory of glibc's arenas to the system.
    unsafe {
        libc::malloc_trim(0);
    }
    let mut mappings = 0;
    #[cfg(target_os = "linux")]
    for (start, len) in
        std::fs::read_to_string("/proc/self/smaps").map(|s| clean_file_mappings(&s)).unwrap_or_default()
    {
        // SAFETY: the range is a whole mapping of this process that is not writable and holds
        // no anonymous (copied-on-write) page: dropping its pages loses nothing, the next
        // access reads the same bytes back from the file's page cache.
        if unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) } == 0 {
            mappings += 1;
        }
    }
    Released { mappings, rss_before_kib, rss_after_kib: status_kib("VmRSS:") }
}

/// The `(start, length)` of each mapping in `smaps` that is backed by a file (a path, an inode),
/// private and not writable, and has no anonymous page: the mappings whose pages are all the file's.
fn clean_file_mappings(smaps: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            let perms = fields.next().unwrap_or_default();
            let inode = fields.nth(2).unwrap_or("0");
            let path = fields.next().unwrap_or_default();
            let file = inode != "0" && path.starts_with('/');
            // Private (`p`) and not writable: never written, so nothing in it differs from the file.
            let read_only = perms.len() == 4 && !perms.contains('w') && perms.ends_with('p');
            current = (file && read_only && b > a).then_some((a, b - a));
        } else if first == "Anonymous:"
            && let Some(m) = current.take()
            && fields.next() == Some("0")
        {
            out.push(m);
        }
    }
    out
}

/// The size of a transparent huge page on x86-64 and arm64 (4 KiB base pages).
const HUGE_PAGE: usize = 2 << 20;

/// Argon2's working memory, `len` blocks of 1 KiB, in transparent huge pages where the kernel
/// gives them (issue 19, sign-in). A hash reads its blocks at data-dependent places across all
/// 19 MiB: in 4 KiB pages that is some 4,900 pages, far more than the TLB holds, so most reads
/// also walk the page table, and on a machine whose cores hash at once those walks share the
/// same caches and memory bandwidth. In 2 MiB pages it is ten. Measured here, one hash alone
/// ~5 % faster, two cores hashing at once 0.94 instead of 0.89 of twice one hash.
///
/// The memory is aligned to a huge page and asked for as huge pages (`MADV_HUGEPAGE`: the
/// machine's setting is often `madvise`) before it is first written, since the kernel chooses a
/// page's size when it is first touched. Where huge pages are not offered (or off Linux) it is
/// ordinary memory, and the same size either way: only the whole huge pages inside the buffer
/// are huge, the rest (1 MiB of 19) stays in small pages.
pub struct HashMemory {
    blocks: std::ptr::NonNull<argon2::Block>,
    len: usize,
    layout: std::alloc::Layout,
}

impl HashMemory {
    /// `len` zeroed blocks (at least one).
    #[allow(unsafe_code)]
    pub fn new(len: usize) -> Self {
        let len = len.max(1);
        let size = len * std::mem::size_of::<argon2::Block>();
        let align = HUGE_PAGE.max(std::mem::align_of::<argon2::Block>());
        let layout = std::alloc::Layout::from_size_align(size, align).expect("a huge page is a power of two");
        // SAFETY: the layout's size is not zero (`len ≥ 1`, a block is 1 KiB).
        let raw = unsafe { std::alloc::alloc(layout) }.cast::<argon2::Block>();
        let Some(blocks) = std::ptr::NonNull::new(raw) else { std::alloc::handle_alloc_error(layout) };
        #[cfg(target_os = "linux")]
        // SAFETY: the range is the allocation just made, none of it written yet; the advice only
        // tells the kernel which page size to fault it in with (it fails harmlessly where huge
        // pages are off, and the memory is then ordinary).
        unsafe {
            libc::madvise(raw.cast(), size, libc::MADV_HUGEPAGE);
        }
        for i in 0..len {
            // SAFETY: `i < len`, inside the allocation, and each block is written once before
            // any is read (the slice below exists only after this loop).
            unsafe { blocks.as_ptr().add(i).write(argon2::Block::default()) };
        }
        Self { blocks, len, layout }
    }

    /// The blocks, as argon2 takes them.
    #[allow(unsafe_code)]
    pub fn blocks(&mut self) -> &mut [argon2::Block] {
        // SAFETY: `len` initialised blocks (written in `new`), borrowed mutably through `self`.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_ptr(), self.len) }
    }

    /// How many blocks.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never: [`HashMemory::new`] makes one block at least.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for HashMemory {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this very layout, and freed once.
        unsafe { std::alloc::dealloc(self.blocks.as_ptr().cast(), self.layout) }
    }
}

/// A `kB` field (`VmRSS:`, `VmHWM:`, `RssFile:`) of this process's `/proc/self/status`.
fn status_kib(field: &str) -> u64 {
    process_status_kib("self", field)
}

/// A `kB` field of `/proc/<pid>/status` (`pid` may be `self`); 0 where there is none.
pub(crate) fn process_status_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0c0000000-55d0c0f00000 r--p 00000000 fd:01 1234 /usr/bin/janua
Rss:                1000 kB
Anonymous:             0 kB
55d0c0f00000-55d0c3000000 r-xp 00f00000 fd:01 1234 /usr/bin/janua
Anonymous:             0 kB
55d0c3000000-55d0c3100000 r--p 03000000 fd:01 1234 /usr/bin/janua
Anonymous:           900 kB
55d0c3100000-55d0c3200000 rw-p 03100000 fd:01 1234 /usr/bin/janua
Anonymous:             0 kB
55d0c4000000-55d0c5000000 rw-p 00000000 00:00 0    [heap]
Anonymous:          4000 kB
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0    [vdso]
Anonymous:             0 kB
7f0000000000-7f0000001000 r--s 00000000 00:05 77   /memfd:shared (deleted)
Anonymous:             0 kB
";

    #[test]
    fn only_read_only_file_mappings_without_private_pages_are_chosen() {
        // The text and the first read-only part; not the relocated part (its pages are private
        // copies), nor writable data, the heap, the vDSO or a shared memory file.
        assert_eq!(clean_file_mappings(SMAPS), vec![(0x55d0c0000000, 0xf00000), (0x55d0c0f00000, 0x2100000)]);
    }

    #[test]
    fn hash_memory_is_aligned_zeroed_and_hashes_as_a_vector_does() {
        use argon2::{Algorithm, Argon2, Params, Version};
        let mut mem = HashMemory::new(64);
        assert_eq!(mem.len(), 64);
        assert_eq!(mem.blocks().as_ptr() as usize % HUGE_PAGE, 0);
        assert!(mem.blocks().iter().all(|b| b.as_ref().iter().all(|w| *w == 0)));
        let argon =
            Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(64, 2, 1, Some(32)).unwrap());
        let (mut ours, mut theirs) = ([0u8; 32], [0u8; 32]);
        argon.hash_password_into_with_memory(b"pw", b"saltsaltsaltsalt", &mut ours, mem.blocks()).unwrap();
        let mut v = vec![argon2::Block::default(); 64];
        argon.hash_password_into_with_memory(b"pw", b"saltsaltsaltsalt", &mut theirs, &mut v).unwrap();
        assert_eq!(ours, theirs);
        // Reused, as the hash threads do: the same answer again.
        argon.hash_password_into_with_memory(b"pw", b"saltsaltsaltsalt", &mut ours, mem.blocks()).unwrap();
        assert_eq!(ours, theirs);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn releasing_unmaps_this_process_s_clean_file_pages_and_it_runs_on() {
        let before = status_kib("RssFile:");
        let released = release_startup_memory();
        let after = status_kib("RssFile:");
        assert!(released.mappings > 0, "{released:?}");
        // The test binary's text was mapped while it ran; little of it is mapped again at once.
        assert!(after < before, "file-backed resident memory {before} kB → {after} kB");
        // Code and constants are read back as they were: this runs, and reads a constant table.
        assert_eq!(clean_file_mappings(SMAPS).len(), 2);
    }
}
