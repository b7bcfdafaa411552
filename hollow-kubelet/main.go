// hollow-kubelet runs the kubelet code of k8s.io/kubernetes (v1.37.2) the way
// kubemark's hollow node does (pkg/kubemark, cmd/kubemark/app), against an
// in-process CRI runtime whose containers play the node simulator's script
// annotation. Changed from kubemark's wiring so that logs are served as a
// real node serves them: TLS on the kubelet port, the real probe manager, a
// real event recorder, a real OS layer (stat, symlinks, rotation) rooted in
// --root-dir, and SIGTERM handling. See docs/hollow-kubelet.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientset "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/component-base/version"
	"k8s.io/klog/v2"
	kubeletapp "k8s.io/kubernetes/cmd/kubelet/app"
	"k8s.io/kubernetes/cmd/kubelet/app/options"
	"k8s.io/kubernetes/pkg/kubelet"
	cadvisortest "k8s.io/kubernetes/pkg/kubelet/cadvisor/testing"
	"k8s.io/kubernetes/pkg/kubelet/cm"
	"k8s.io/kubernetes/pkg/kubemark"

	criruntime "logtail.dev/hollow-kubelet/internal/runtime"
)

type config struct {
	kubeconfig    string
	nodeName      string
	nodeIP        string
	port          int
	listenAddress string
	healthzPort   int
	rootDir       string
	simDir        string
	tlsCert       string
	tlsKey        string
	serverTLSBoot bool
	logMaxSize    string
	logMaxFiles   int
	nodeLabels    map[string]string
	crashLoopMax  time.Duration
	maxDeadPerCtr int
	verbosity     int
}

func parseFlags() *config {
	c := &config{nodeLabels: map[string]string{}}
	fs := pflag.NewFlagSet("hollow-kubelet", pflag.ExitOnError)
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster (required)")
	fs.StringVar(&c.nodeName, "node-name", "", "name of the Node (required)")
	fs.StringVar(&c.nodeIP, "node-ip", "", "InternalIP of the Node; must not be loopback (required)")
	fs.IntVar(&c.port, "port", 0, "kubelet API port, advertised as daemonEndpoints.kubeletEndpoint.Port (required)")
	fs.StringVar(&c.listenAddress, "listen-address", "", "bind address of the kubelet API (default: --node-ip)")
	fs.IntVar(&c.healthzPort, "healthz-port", 0, "port of a plain-HTTP /healthz on 127.0.0.1; 0: off")
	fs.StringVar(&c.rootDir, "root-dir", "", "kubelet root directory; pod logs and the /var/log/containers equivalent go under it (required)")
	fs.StringVar(&c.simDir, "sim-dir", "", "where each container's output is recorded ($LOGTAIL_SIM_DIR) (required)")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "serving certificate of the kubelet API")
	fs.StringVar(&c.tlsKey, "tls-key", "", "key of --tls-cert")
	fs.BoolVar(&c.serverTLSBoot, "server-tls-bootstrap", false, "serverTLSBootstrap: request the serving certificate with a CSR (signer kubernetes.io/kubelet-serving); TLS handshakes fail until it is issued")
	fs.StringVar(&c.logMaxSize, "container-log-max-size", "10Mi", "containerLogMaxSize of the kubelet's own log rotation")
	fs.IntVar(&c.logMaxFiles, "container-log-max-files", 5, "containerLogMaxFiles of the kubelet's own log rotation")
	labels := cliflag.ConfigurationMap(c.nodeLabels)
	fs.Var(&labels, "node-labels", "extra Node labels, k=v,...")
	fs.DurationVar(&c.crashLoopMax, "crash-loop-max-period", 0, "crashLoopBackOff.maxContainerRestartPeriod (1s-300s; feature KubeletCrashLoopBackOffMax, beta, on); 0: the kubelet's default (300s)")
	fs.IntVar(&c.maxDeadPerCtr, "maximum-dead-containers-per-container", 1, "the kubelet's deprecated flag of that name (MaxPerPodContainerCount): dead instances kept per container; the kubelet's default 1 deletes run k-1 as soon as run k exits (kubemark uses 2)")
	fs.IntVar(&c.verbosity, "v", 0, "kubelet log verbosity")
	_ = fs.Parse(os.Args[1:])
	var missing []string
	for name, v := range map[string]string{"kubeconfig": c.kubeconfig, "node-name": c.nodeName, "node-ip": c.nodeIP, "root-dir": c.rootDir, "sim-dir": c.simDir} {
		if v == "" {
			missing = append(missing, "--"+name)
		}
	}
	if c.port == 0 {
		missing = append(missing, "--port")
	}
	if len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "hollow-kubelet: missing %s\n", strings.Join(missing, ", "))
		os.Exit(2)
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		fmt.Fprintln(os.Stderr, "hollow-kubelet: --tls-cert and --tls-key go together")
		os.Exit(2)
	}
	if c.serverTLSBoot && c.tlsCert != "" {
		fmt.Fprintln(os.Stderr, "hollow-kubelet: use either --tls-cert/--tls-key or --server-tls-bootstrap")
		os.Exit(2)
	}
	if ip := net.ParseIP(c.nodeIP); ip == nil || ip.IsLoopback() {
		fmt.Fprintf(os.Stderr, "hollow-kubelet: --node-ip %q must be a non-loopback IP (the kubelet refuses loopback node IPs)\n", c.nodeIP)
		os.Exit(2)
	}
	if c.listenAddress == "" {
		c.listenAddress = c.nodeIP
	}
	return c
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		klog.Fatalf("bad path %q: %v", p, err)
	}
	return a
}

func main() {
	c := parseFlags()
	klogFlags := flag.NewFlagSet("klog", flag.ExitOnError)
	klog.InitFlags(klogFlags)
	_ = klogFlags.Set("logtostderr", "true")
	_ = klogFlags.Set("v", strconv.Itoa(c.verbosity))

	root := abs(c.rootDir)
	simDir := abs(c.simDir)
	for _, d := range []string{root, simDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			klog.Fatalf("creating %s: %v", d, err)
		}
	}
	// kuberuntime makes each container's symlink under the fixed
	// /var/log/containers (legacyContainerLogsDir); the OS layer maps that
	// directory into the root dir, and the kubelet's own copy of the path
	// (kubelet.ContainerLogsDir) points there too.
	containersDir := filepath.Join(root, "containers")
	kubelet.ContainerLogsDir = containersDir

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	restCfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		klog.Fatalf("kubeconfig: %v", err)
	}
	restCfg.UserAgent = "hollow-kubelet/" + c.nodeName
	restCfg.QPS = 50
	restCfg.Burst = 100
	client, err := clientset.NewForConfig(restCfg)
	if err != nil {
		klog.Fatalf("client: %v", err)
	}

	f := options.NewKubeletFlags()
	f.RootDirectory = root
	f.CertDirectory = filepath.Join(root, "pki")
	f.HostnameOverride = c.nodeName
	f.NodeIP = c.nodeIP
	f.NodeLabels = c.nodeLabels
	f.MaxPerPodContainerCount = int32(c.maxDeadPerCtr)
	if err := options.ValidateKubeletFlags(f); err != nil {
		klog.Fatalf("flags: %v", err)
	}

	kc, err := options.NewKubeletConfiguration()
	if err != nil {
		klog.Fatalf("kubelet configuration: %v", err)
	}
	kc.EnableServer = true
	kc.Address = c.listenAddress
	kc.Port = int32(c.port)
	kc.ReadOnlyPort = 0
	kc.HealthzPort = 0
	kc.StaticPodPath = ""
	kc.StaticPodURL = ""
	kc.PodLogsDir = filepath.Join(root, "pod-logs")
	kc.RegisterNode = true
	kc.MaxPods = 110
	// A cluster DNS address (nothing answers there) keeps the kubelet from
	// emitting a MissingClusterDNS Warning Event for every pod sync.
	kc.ClusterDNS = []string{"10.0.0.10"}
	kc.ClusterDomain = "cluster.local"
	kc.CgroupsPerQOS = false
	kc.CgroupRoot = ""
	kc.KubeletCgroups = ""
	kc.SystemCgroups = ""
	kc.EnforceNodeAllocatable = []string{}
	kc.ProtectKernelDefaults = false
	kc.EnableControllerAttachDetach = false
	kc.ContainerLogMaxSize = c.logMaxSize
	kc.ContainerLogMaxFiles = int32(c.logMaxFiles)
	kc.ContainerLogMonitorInterval = metav1.Duration{Duration: time.Second}
	kc.ServerTLSBootstrap = c.serverTLSBoot
	kc.TLSCertFile = c.tlsCert
	kc.TLSPrivateKeyFile = c.tlsKey
	kc.ProviderID = ""
	if c.crashLoopMax > 0 {
		// The back-off starts at min(10s, this) and doubles up to it (pkg/kubelet/kubelet.go, newCrashLoopBackOff).
		kc.CrashLoopBackOff.MaxContainerRestartPeriod = &metav1.Duration{Duration: c.crashLoopMax}
	}

	heartbeatCfg := *restCfg
	heartbeatCfg.Timeout = kc.NodeStatusUpdateFrequency.Duration
	if lease := time.Duration(kc.NodeLeaseDurationSeconds) * time.Second; heartbeatCfg.Timeout > lease {
		heartbeatCfg.Timeout = lease
	}
	heartbeatCfg.QPS = -1
	heartbeatClient, err := clientset.NewForConfig(&heartbeatCfg)
	if err != nil {
		klog.Fatalf("heartbeat client: %v", err)
	}

	rt := criruntime.New(client, simDir, filepath.Join(root, "scripted-runtime"), c.nodeName)

	hk := kubemark.NewHollowKubelet(f, kc, client, heartbeatClient,
		&cadvisortest.Fake{NodeName: c.nodeName}, rt.Images(), rt, cm.NewStubContainerManager())
	deps := hk.KubeletDeps
	// What kubemark's dependencies get wrong for serving logs:
	deps.ProbeManager = nil // the real prober (kubemark's fake reports exited containers ready)
	deps.Recorder = nil     // a real recorder, sending Events through EventClient
	deps.EventClient = client.CoreV1()
	deps.OSInterface = newRootedOS(containersDir)
	tlsOpts, err := kubeletapp.InitializeTLS(ctx, f, kc)
	if err != nil {
		klog.Fatalf("TLS: %v", err)
	}
	deps.TLSOptions = tlsOpts

	if c.healthzPort > 0 {
		go serveHealthz(c.healthzPort)
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sigs
		klog.InfoS("Stopping on signal", "signal", s.String())
		cancel()
		rt.Shutdown()
		klog.Flush()
		os.Exit(0)
	}()

	klog.InfoS("Starting hollow kubelet", "version", version.Get().GitVersion, "node", c.nodeName, "nodeIP", c.nodeIP,
		"listen", net.JoinHostPort(c.listenAddress, strconv.Itoa(c.port)), "rootDir", root, "simDir", simDir)
	server := &options.KubeletServer{KubeletFlags: *f, KubeletConfiguration: *kc}
	if err := kubeletapp.RunKubelet(ctx, server, deps); err != nil {
		klog.ErrorS(err, "Kubelet failed")
		klog.Flush()
		os.Exit(1)
	}
	<-ctx.Done()
	select {} // the signal handler exits
}

func serveHealthz(port int) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})
	srv := &http.Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		klog.ErrorS(err, "healthz server failed")
		os.Exit(1)
	}
}
