package main

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	kubecontainer "k8s.io/kubernetes/pkg/kubelet/container"
)

// legacyContainerLogsDir is the directory kuberuntime hard-codes for the
// per-container log symlinks (pkg/kubelet/kuberuntime/legacy.go).
const legacyContainerLogsDir = "/var/log/containers"

// rootedOS is the kubelet's OS layer doing real file operations (kubemark's
// FakeOS fails Stat, so no symlinks and no log rotation), with
// /var/log/containers redirected into the kubelet's root dir so several
// hollow kubelets can run on one machine.
type rootedOS struct {
	kubecontainer.RealOS
	containersDir string
}

func newRootedOS(containersDir string) *rootedOS {
	return &rootedOS{containersDir: containersDir}
}

func (o *rootedOS) m(p string) string {
	if p == legacyContainerLogsDir {
		return o.containersDir
	}
	if strings.HasPrefix(p, legacyContainerLogsDir+"/") {
		return filepath.Join(o.containersDir, p[len(legacyContainerLogsDir)+1:])
	}
	return p
}

func (o *rootedOS) MkdirAll(path string, perm os.FileMode) error {
	return o.RealOS.MkdirAll(o.m(path), perm)
}
func (o *rootedOS) Symlink(oldname, newname string) error {
	return o.RealOS.Symlink(o.m(oldname), o.m(newname))
}
func (o *rootedOS) Stat(path string) (os.FileInfo, error) { return o.RealOS.Stat(o.m(path)) }
func (o *rootedOS) Remove(path string) error              { return o.RealOS.Remove(o.m(path)) }
func (o *rootedOS) RemoveAll(path string) error           { return o.RealOS.RemoveAll(o.m(path)) }
func (o *rootedOS) Create(path string) (*os.File, error)  { return o.RealOS.Create(o.m(path)) }
func (o *rootedOS) Chmod(path string, perm os.FileMode) error {
	return o.RealOS.Chmod(o.m(path), perm)
}
func (o *rootedOS) Chtimes(path string, atime, mtime time.Time) error {
	return o.RealOS.Chtimes(o.m(path), atime, mtime)
}
func (o *rootedOS) ReadDir(dirname string) ([]os.DirEntry, error) {
	return o.RealOS.ReadDir(o.m(dirname))
}
func (o *rootedOS) Glob(pattern string) ([]string, error) { return o.RealOS.Glob(o.m(pattern)) }
func (o *rootedOS) Open(name string) (*os.File, error)    { return o.RealOS.Open(o.m(name)) }
func (o *rootedOS) OpenFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	return o.RealOS.OpenFile(o.m(name), flag, perm)
}
func (o *rootedOS) Rename(oldpath, newpath string) error {
	return o.RealOS.Rename(o.m(oldpath), o.m(newpath))
}

var _ kubecontainer.OSInterface = (*rootedOS)(nil)
