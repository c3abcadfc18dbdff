//! Network namespaces held by file descriptors, and the TUN device that joins each one to
//! the router. No namespace is ever named (nothing under /run/netns): one lives as long as
//! a descriptor or a process refers to it, so a killed launcher leaves nothing behind.

use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The TUN device's name inside every namespace.
pub const TUN_NAME: &str = "cpx0";
/// The MTU of the TUN devices (jumbo frames: fewer packets for the router to carry).
pub const TUN_MTU: i32 = 9000;

/// A network namespace, kept alive by this descriptor (and by the processes in it).
#[derive(Debug)]
pub struct Netns {
    fd: OwnedFd,
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn open_path(path: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = CString::new(path).map_err(io::Error::other)?;
    // SAFETY: open(2) with a NUL-terminated path; the descriptor returned is owned here.
    let fd = check(unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: fd was just returned by open and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Netns {
    /// A new network namespace (only a loopback device, down). Needs CAP_SYS_ADMIN.
    pub fn create() -> io::Result<Netns> {
        // On a thread of its own: unshare moves only the calling thread, which then ends.
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: unshare(2) changes this thread's namespace only.
                check(unsafe { libc::unshare(libc::CLONE_NEWNET) }).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("unshare(CLONE_NEWNET): {e} (network emulation needs root)"),
                    )
                })?;
                open_path("/proc/thread-self/ns/net", libc::O_RDONLY)
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
        })
        .map(|fd| Netns { fd })
    }

    /// A namespace another process holds: `/proc/PID/fd/N` or `/proc/PID/ns/net`.
    pub fn open(path: &str) -> io::Result<Netns> {
        let fd = open_path(path, libc::O_RDONLY)
            .map_err(|e| io::Error::new(e.kind(), format!("opening namespace {path}: {e}")))?;
        Ok(Netns { fd })
    }

    /// The kernel's identity of the namespace (`net:[inode]`, as /proc shows it).
    pub fn id(&self) -> io::Result<String> {
        std::fs::read_link(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
            .map(|p| p.to_string_lossy().into_owned())
    }

    /// The descriptor (for `/proc/PID/fd/N` paths).
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Runs `f` on a thread inside the namespace and returns its result: sockets it creates
    /// belong to the namespace for their whole life, whichever thread uses them later.
    /// Threads `f` starts are inside too.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> io::Result<R> {
        let fd = self.fd.as_raw_fd();
        std::thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: setns(2) moves this thread only, to the namespace fd refers to.
                check(unsafe { libc::setns(fd, libc::CLONE_NEWNET) })
                    .map_err(|e| io::Error::new(e.kind(), format!("setns: {e}")))?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Makes `cmd` start inside the namespace, and die (SIGKILL) when the thread that
    /// spawns it ends: a killed launcher takes its nodes, and so their namespaces, along.
    pub fn enter_on_spawn(&self, cmd: &mut Command) {
        let fd = self.fd.as_raw_fd();
        // SAFETY: getpid(2) cannot fail.
        let parent = unsafe { libc::getpid() };
        // SAFETY: only async-signal-safe calls (setns, prctl, getppid) in the child.
        unsafe {
            cmd.pre_exec(move || {
                check(libc::setns(fd, libc::CLONE_NEWNET))?;
                check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL))?;
                if libc::getppid() != parent {
                    // The launcher died before the line above: no one would stop us.
                    return Err(io::Error::other("the launcher is gone"));
                }
                Ok(())
            });
        }
    }
}

/// Runs `f` inside `site` ([`Netns::run`]), or on this thread when there is none.
pub fn run_in<R: Send>(site: Option<&Netns>, f: impl FnOnce() -> R + Send) -> io::Result<R> {
    match site {
        Some(ns) => ns.run(f),
        None => Ok(f()),
    }
}

/// An AF_INET datagram socket, for the interface ioctls.
fn inet_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2); the descriptor is owned at once.
    let fd =
        check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= r.ifr_name.len() {
        return Err(io::Error::other(format!("interface name {name} too long")));
    }
    for (d, s) in r.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(r)
}

fn sockaddr_in(a: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(a).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size; the kernel reads it as sockaddr_in.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn ioctl(sock: &OwnedFd, req: libc::c_ulong, r: &mut libc::ifreq, what: &str) -> io::Result<()> {
    // SAFETY: the interface ioctls read and write the one ifreq passed.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), req as _, r as *mut libc::ifreq) })
        .map(|_| ())
        .map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))
}

fn set_up(sock: &OwnedFd, name: &str) -> io::Result<()> {
    let mut r = ifreq(name)?;
    ioctl(sock, libc::SIOCGIFFLAGS, &mut r, "SIOCGIFFLAGS")?;
    // SAFETY: SIOCGIFFLAGS filled the flags member.
    unsafe { r.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    ioctl(
        sock,
        libc::SIOCSIFFLAGS,
        &mut r,
        &format!("bringing {name} up"),
    )
}

/// Inside the calling thread's namespace: creates the TUN device, gives it `addr/prefix`,
/// brings it and the loopback device up. Returns the device's descriptor (non-blocking):
/// the device lives as long as it is open.
pub fn tun_here(addr: Ipv4Addr, prefix: u8) -> io::Result<OwnedFd> {
    let tun = open_path("/dev/net/tun", libc::O_RDWR | libc::O_NONBLOCK).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("opening /dev/net/tun: {e} (needs the tun driver)"),
        )
    })?;
    let mut r = ifreq(TUN_NAME)?;
    r.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads the ifreq passed.
    check(unsafe {
        libc::ioctl(
            tun.as_raw_fd(),
            libc::TUNSETIFF as _,
            &mut r as *mut libc::ifreq,
        )
    })
    .map_err(|e| io::Error::new(e.kind(), format!("TUNSETIFF: {e}")))?;
    let sock = inet_socket()?;
    let mut r = ifreq(TUN_NAME)?;
    r.ifr_ifru.ifru_mtu = TUN_MTU;
    ioctl(&sock, libc::SIOCSIFMTU, &mut r, "SIOCSIFMTU")?;
    let mut r = ifreq(TUN_NAME)?;
    r.ifr_ifru.ifru_addr = sockaddr_in(addr);
    ioctl(&sock, libc::SIOCSIFADDR, &mut r, "SIOCSIFADDR")?;
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    let mut r = ifreq(TUN_NAME)?;
    r.ifr_ifru.ifru_netmask = sockaddr_in(Ipv4Addr::from(mask));
    ioctl(&sock, libc::SIOCSIFNETMASK, &mut r, "SIOCSIFNETMASK")?;
    set_up(&sock, TUN_NAME)?;
    set_up(&sock, "lo")?;
    Ok(tun)
}
