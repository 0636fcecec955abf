//! `/proc` readings for tests and benchmarks (Linux): which process listens on a port, how many
//! TCP connections a process holds to a port, and how much CPU a process has used.
//!
//! `/proc/<pid>/net/tcp` lists every socket of the process's network namespace, so a process's
//! own sockets are picked by the inodes its `/proc/<pid>/fd` links name.

use std::{collections::HashSet, fs, time::Duration};

/// `st` of an established socket in `/proc/net/tcp`.
const ESTABLISHED: &str = "01";
/// `st` of a listening socket.
const LISTEN: &str = "0A";

/// One line of `/proc/<pid>/net/tcp{,6}`.
struct TcpEntry {
    local_port: u16,
    remote_port: u16,
    state: String,
    inode: u64,
}

fn tcp_entries(pid: &str) -> Vec<TcpEntry> {
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|f| fs::read_to_string(format!("/proc/{pid}/net/{f}")).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(parse_tcp_line)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn parse_tcp_line(line: &str) -> Option<TcpEntry> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let port = |addr: &str| u16::from_str_radix(addr.rsplit_once(':')?.1, 16).ok();
    Some(TcpEntry {
        local_port: port(fields.get(1)?)?,
        remote_port: port(fields.get(2)?)?,
        state: fields.get(3)?.to_string(),
        inode: fields.get(9)?.parse().ok()?,
    })
}

/// The inodes of the sockets `pid` holds open.
fn socket_inodes(pid: &str) -> HashSet<u64> {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    fds.filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// TCP connections that process `pid` holds, established to remote port `port`.
pub fn established_to(pid: u32, port: u16) -> usize {
    let pid = pid.to_string();
    let mine = socket_inodes(&pid);
    tcp_entries(&pid)
        .iter()
        .filter(|e| e.state == ESTABLISHED && e.remote_port == port && mine.contains(&e.inode))
        .count()
}

/// The process that listens on TCP port `port`, if this user may see it.
pub fn listener_pid(port: u16) -> Option<u32> {
    let listening: HashSet<u64> = tcp_entries("self")
        .iter()
        .filter(|e| e.state == LISTEN && e.local_port == port)
        .map(|e| e.inode)
        .collect();
    if listening.is_empty() {
        return None;
    }
    fs::read_dir("/proc")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            socket_inodes(&pid.to_string())
                .iter()
                .any(|i| listening.contains(i))
        })
}

/// User + system CPU time of process `pid` (`/proc/<pid>/stat`); zero when it cannot be read.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at field 3; utime and
    // stime are fields 14 and 15, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_own_connections_and_finds_the_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let me = std::process::id();
        assert_eq!(listener_pid(port), Some(me));
        assert_eq!(established_to(me, port), 0);
        let _a = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _b = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert_eq!(established_to(me, port), 2);
    }

    #[test]
    fn parses_a_tcp_line() {
        let line = "   0: 0100007F:8E4B 0100007F:A3C2 01 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 20 4 30 10 -1";
        let e = parse_tcp_line(line).unwrap();
        assert_eq!(
            (e.local_port, e.remote_port, e.state.as_str(), e.inode),
            (0x8E4B, 0xA3C2, "01", 123456)
        );
    }
}
