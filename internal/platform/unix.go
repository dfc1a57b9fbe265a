//go:build unix

package platform

import (
	"fmt"
	"net"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// DropPrivileges switches to group then user (names or numeric ids), after
// the listeners are open. Supplementary groups are cleared.
func DropPrivileges(userName, groupName string) error {
	if userName == "" && groupName == "" {
		return nil
	}
	uid, gid, err := resolveIDs(userName, groupName)
	if err != nil {
		return err
	}
	if gid >= 0 {
		if err := syscall.Setgroups([]int{gid}); err != nil {
			return fmt.Errorf("setgroups: %w", err)
		}
		if err := syscall.Setgid(gid); err != nil {
			return fmt.Errorf("setgid %d: %w", gid, err)
		}
	}
	if uid >= 0 {
		if err := syscall.Setuid(uid); err != nil {
			return fmt.Errorf("setuid %d: %w", uid, err)
		}
	}
	return nil
}

// resolveIDs turns user and group names (or numeric ids) into ids, -1 for
// an empty name; without a group, the user's primary group is taken.
func resolveIDs(userName, groupName string) (uid, gid int, err error) {
	uid, gid = -1, -1
	if groupName != "" {
		if gid, err = lookupGroup(groupName); err != nil {
			return -1, -1, err
		}
	}
	if userName != "" {
		if u, err := user.Lookup(userName); err == nil {
			uid, _ = strconv.Atoi(u.Uid)
			if gid < 0 {
				gid, _ = strconv.Atoi(u.Gid)
			}
		} else if n, nerr := strconv.Atoi(userName); nerr == nil {
			uid = n
		} else {
			return -1, -1, &IDError{Kind: "user", Name: userName, Err: err}
		}
	}
	return uid, gid, nil
}

func lookupGroup(name string) (int, error) {
	if g, err := user.LookupGroup(name); err == nil {
		return strconv.Atoi(g.Gid)
	}
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	return 0, &IDError{Kind: "group", Name: name, Err: fmt.Errorf("unknown group")}
}

// SystemdListeners returns the listeners passed by systemd socket
// activation (LISTEN_PID/LISTEN_FDS, fds from 3), or nil when none were.
func SystemdListeners() ([]net.Listener, error) {
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return nil, nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n <= 0 {
		return nil, nil
	}
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	var ls []net.Listener
	for fd := 3; fd < 3+n; fd++ {
		syscall.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), "systemd-socket-"+strconv.Itoa(fd))
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("socket activation fd %d: %w", fd, err)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// ChownTo gives existing paths to the user and group that DropPrivileges
// will switch to (empty names keep that part), so files opened before the
// drop stay writable after it. Missing paths are skipped.
func ChownTo(userName, groupName string, paths ...string) error {
	if userName == "" && groupName == "" {
		return nil
	}
	uid, gid, err := resolveIDs(userName, groupName)
	if err != nil {
		return err
	}
	for _, p := range paths {
		if err := os.Lchown(p, uid, gid); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}
