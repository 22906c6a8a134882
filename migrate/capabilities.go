package migrate

import "github.com/msync/msync/transport"

// Capabilities say what one kind of end can carry and do. Stock rsync
// (protocol 27, as msync speaks it) is the end that lacks most; every
// refusal and default that depends on the kind of an end reads it here.
type Capabilities struct {
	// Metadata that crosses from or to this end.
	Xattrs    bool // extended attributes
	ACLs      bool // POSIX ACLs
	NsMtimes  bool // mtimes to the nanosecond (else whole seconds)
	Owners    bool // numeric owner and group
	HardLinks bool // hard links of regular files
	// HardLinkedSpecials: hard links between symlinks, fifos, sockets or
	// devices (else they arrive as separate objects).
	HardLinkedSpecials bool
	Specials           bool // fifos, sockets and devices

	// What this end does as a destination.
	KeepsState  bool // keeps a pass's state on its own host (else it stays here)
	DryRun      bool // can show a pass without changing anything
	TrustDest   bool // has a manifest of its own to trust instead of a scan
	DeltaAlways bool // can receive every changed file as a delta (else files cross whole)
	FsyncFile   bool // can flush each file before its rename (--fsync=file)
	Classes     bool // runs a dataset class's rules in its receiver
	// OwnDeletes: deletes only what msync put there by itself; stock rsync
	// does it through --delete with include rules built here.
	OwnDeletes bool
}

// msyncEnd is what a tree msync reaches (here, over ssh or through its
// daemon) carries: everything.
var msyncEnd = Capabilities{Xattrs: true, ACLs: true, NsMtimes: true, Owners: true, HardLinks: true,
	HardLinkedSpecials: true, Specials: true, KeepsState: true, DryRun: true, TrustDest: true,
	DeltaAlways: true, FsyncFile: true, Classes: true, OwnDeletes: true}

// rsyncEnd is stock rsync spoken to in protocol 27 (-lHogDtpr --numeric-ids).
var rsyncEnd = Capabilities{Owners: true, HardLinks: true, Specials: true}

// CapabilitiesOf returns what an end of kind k can carry and do.
func CapabilitiesOf(k transport.Kind) Capabilities {
	switch k {
	case transport.RsyncDaemon, transport.RsyncShell:
		return rsyncEnd
	default:
		return msyncEnd
	}
}

// xattrs reports whether extended attributes and ACLs can cross between
// r's ends, and why not when they cannot: the one decision a pass (which
// then leaves them out) and a verification (which then does not compare
// them) both follow.
func (r Route) xattrs() (ok bool, why string) {
	src, dst := CapabilitiesOf(r.Src.Kind), CapabilitiesOf(r.Dst.Kind)
	if !src.Xattrs || !dst.Xattrs || !src.ACLs || !dst.ACLs {
		return false, "xattrs and ACLs: rsync's protocol 27 carries none"
	}
	return true, ""
}
