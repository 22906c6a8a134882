// Package xattr defines an extended attribute as msync carries it and the
// names of the POSIX ACLs among them. It imports only the standard
// library so that internal/fsx (which reads and writes them) need not
// import manifest (which stores them); manifest re-exports it.
package xattr

import "bytes"

// Xattr is one extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}

// The POSIX ACLs of Linux are the extended attributes with these names
// (their values in the kernel's binary form, with numeric ids): the access
// ACL of any object but a symlink, and the default ACL of a directory.
// They ride with the other xattrs, but are told apart in what msync
// reports, as rsync's -A is told apart from its -X.
const (
	ACLAccess  = "system.posix_acl_access"
	ACLDefault = "system.posix_acl_default"
)

// IsACL reports whether the xattr name is one of the POSIX ACLs.
func IsACL(name string) bool { return name == ACLAccess || name == ACLDefault }

// Equal compares two xattr lists sorted by name.
func Equal(a, b []Xattr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}
