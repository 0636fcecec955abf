package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// The controllers a mesh control plane relies on; the rest (volumes, nodes, CSRs …) stay off.
var controllers = []string{
	"deployment-controller", "replicaset-controller", "job-controller",
	"endpointslice-controller", "endpoints-controller", "namespace-controller",
	"serviceaccount-controller", "serviceaccount-token-controller",
	"garbage-collector-controller", "root-ca-certificate-publisher-controller",
	"statefulset-controller", "daemonset-controller", "pod-garbage-collector-controller",
}

type config struct {
	dir        string
	port       int
	etcdPort   int
	nodes      int
	podRuntime string
}

func (c config) path(parts ...string) string {
	return filepath.Join(append([]string{c.dir}, parts...)...)
}

func up(args []string) int {
	var c config
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	fs.StringVar(&c.dir, "dir", "target/localkube", "state directory: etcd data, certificates, logs, kubeconfig")
	fs.IntVar(&c.port, "port", 16443, "kube-apiserver secure port on 127.0.0.1")
	fs.IntVar(&c.etcdPort, "etcd-port", 16444, "etcd client port on 127.0.0.1 (the peer port is one above)")
	fs.IntVar(&c.nodes, "nodes", 2, "simulated nodes, one zone each")
	fs.StringVar(&c.podRuntime, "pod-runtime", "simulated",
		"simulated: the node simulator reports pods Running with data-only IPs; external: it only keeps the Nodes Ready, and another process runs the pods")
	_ = fs.Parse(args)
	if c.podRuntime != "simulated" && c.podRuntime != "external" {
		log.Printf("localkube: --pod-runtime must be simulated or external, not %q", c.podRuntime)
		return 2
	}
	abs, err := filepath.Abs(c.dir)
	if err != nil {
		log.Printf("localkube: %v", err)
		return 1
	}
	c.dir = abs
	if err := run(c); err != nil {
		log.Printf("localkube: %v", err)
		return 1
	}
	return 0
}

func run(c config) error {
	for _, d := range []string{c.path("pki"), c.path("logs"), c.path("etcd")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	_ = os.Remove(c.path("ready"))
	for _, p := range []int{c.port, c.etcdPort, c.etcdPort + 1} {
		if err := portFree(p); err != nil {
			return err
		}
	}
	token, err := ensurePKI(c)
	if err != nil {
		return fmt.Errorf("preparing certificates: %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	etcd, err := startEtcd(c)
	if err != nil {
		return fmt.Errorf("starting etcd: %w", err)
	}
	defer etcd.Close()
	log.Printf("etcd serving on 127.0.0.1:%d", c.etcdPort)

	procs := &children{}
	defer procs.stopAll()
	if err := procs.start(ctx, c, "apiserver", apiserverFlags(c)); err != nil {
		return err
	}
	if err := writeKubeconfig(c, token); err != nil {
		return err
	}
	if err := waitReady(ctx, c, token, procs); err != nil {
		return err
	}
	log.Printf("kube-apiserver ready on https://127.0.0.1:%d", c.port)

	kcfg := c.path("kubeconfig")
	if err := procs.start(ctx, c, "controller-manager", []string{
		"--kubeconfig=" + kcfg, "--leader-elect=false", "--secure-port=0",
		"--controllers=" + strings.Join(controllers, ","),
		"--service-account-private-key-file=" + c.path("pki", "sa.key"),
		"--root-ca-file=" + c.path("pki", "ca.crt"),
		"--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
		"--concurrent-service-endpoint-syncs=10",
		"--v=1",
	}); err != nil {
		return err
	}
	if err := procs.start(ctx, c, "scheduler", []string{
		"--kubeconfig=" + kcfg, "--leader-elect=false", "--secure-port=0", "--v=1",
	}); err != nil {
		return err
	}

	restCfg, err := clientcmd.BuildConfigFromFlags("", kcfg)
	if err != nil {
		return err
	}
	restCfg.QPS, restCfg.Burst = 200, 400
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	sim := newNodeSim(client, c.nodes, c.podRuntime == "simulated")
	if err := sim.registerNodes(ctx); err != nil {
		return fmt.Errorf("registering nodes: %w", err)
	}
	simDone := make(chan struct{})
	go func() { defer close(simDone); sim.run(ctx) }()

	if err := waitDefaultServiceAccount(ctx, client); err != nil {
		return err
	}
	if err := os.WriteFile(c.path("ready"), []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o600); err != nil {
		return err
	}
	log.Printf("cluster ready: export KUBECONFIG=%s", kcfg)

	select {
	case <-ctx.Done():
		log.Printf("shutting down")
	case name := <-procs.exited:
		log.Printf("%s exited; shutting down (see %s)", name, c.path("logs", name+".log"))
		stop()
	}
	_ = os.Remove(c.path("ready"))
	<-simDone
	return nil
}

func apiserverFlags(c config) []string {
	pki := func(f string) string { return c.path("pki", f) }
	return []string{
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", c.etcdPort),
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", c.port),
		// The address written into the `kubernetes` Service's endpoints (EndpointSlices refuse
		// loopback addresses): where pods reach the API server through that Service. It is the
		// host side of the link that a pod runtime makes to the pod network, and the runtime
		// forwards it to 127.0.0.1:PORT; with no runtime it is data only.
		"--advertise-address=" + advertiseAddress,
		"--tls-cert-file=" + pki("apiserver.crt"),
		"--tls-private-key-file=" + pki("apiserver.key"),
		"--token-auth-file=" + pki("tokens.csv"),
		// A client CA makes the API server publish kube-system/extension-apiserver-authentication,
		// as every real cluster has; admin access itself uses the token.
		"--client-ca-file=" + pki("client-ca.crt"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pki("sa.key"),
		"--service-account-signing-key-file=" + pki("sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		"--allow-privileged=true",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--cert-dir=" + c.path("pki"),
		"--v=1",
	}
}

// advertiseAddress is the API server's address as pods see it (see apiserverFlags).
const advertiseAddress = "10.243.255.1"

// The serving certificate's IP addresses: loopback, the `kubernetes` Service's ClusterIP and the
// advertised address.
var apiserverIPs = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP("10.96.0.1"), net.ParseIP(advertiseAddress)}

// ensurePKI creates, once, the serving CA and certificate, the ServiceAccount signing key and
// the admin token; later starts reuse them so that kubeconfigs and tokens stay valid. The
// serving certificate is made anew only when it lacks one of apiserverIPs (a state directory
// from an older localkube).
func ensurePKI(c config) (string, error) {
	pki := func(f string) string { return c.path("pki", f) }
	if !certHasIPs(pki("apiserver.crt"), apiserverIPs) {
		certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("localhost", apiserverIPs,
			[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
				"kubernetes.default.svc.cluster.local"})
		if err != nil {
			return "", err
		}
		if err := certutil.WriteCert(pki("apiserver.crt"), certPEM); err != nil {
			return "", err
		}
		if err := keyutil.WriteKey(pki("apiserver.key"), keyPEM); err != nil {
			return "", err
		}
		// The generated bundle is the serving certificate followed by its CA.
		if err := certutil.WriteCert(pki("ca.crt"), certPEM); err != nil {
			return "", err
		}
	}
	if _, err := os.Stat(pki("sa.key")); os.IsNotExist(err) {
		key, err := keyutil.MakeEllipticPrivateKeyPEM()
		if err != nil {
			return "", err
		}
		if err := keyutil.WriteKey(pki("sa.key"), key); err != nil {
			return "", err
		}
	}
	if _, err := os.Stat(pki("client-ca.crt")); os.IsNotExist(err) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return "", err
		}
		ca, err := certutil.NewSelfSignedCACert(certutil.Config{CommonName: "localkube-client-ca"}, key)
		if err != nil {
			return "", err
		}
		if err := certutil.WriteCert(pki("client-ca.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})); err != nil {
			return "", err
		}
	}
	if _, err := os.Stat(pki("tokens.csv")); os.IsNotExist(err) {
		token, err := randomToken()
		if err != nil {
			return "", err
		}
		line := fmt.Sprintf("%s,localkube-admin,localkube-admin,\"system:masters\"\n", token)
		if err := os.WriteFile(pki("tokens.csv"), []byte(line), 0o600); err != nil {
			return "", err
		}
	}
	raw, err := os.ReadFile(pki("tokens.csv"))
	if err != nil {
		return "", err
	}
	return strings.SplitN(string(raw), ",", 2)[0], nil
}

// certHasIPs reports whether the first certificate in the PEM file exists and holds every ip.
func certHasIPs(path string, ips []net.IP) bool {
	certs, err := certutil.CertsFromFile(path)
	if err != nil {
		return false
	}
	for _, ip := range ips {
		found := false
		for _, have := range certs[0].IPAddresses {
			found = found || have.Equal(ip)
		}
		if !found {
			return false
		}
	}
	return true
}

func randomToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", b), nil
}

func writeKubeconfig(c config, token string) error {
	ca, err := os.ReadFile(c.path("pki", "ca.crt"))
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["localkube"] = &clientcmdapi.Cluster{
		Server:                   fmt.Sprintf("https://127.0.0.1:%d", c.port),
		CertificateAuthorityData: ca,
	}
	cfg.AuthInfos["localkube-admin"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["localkube"] = &clientcmdapi.Context{Cluster: "localkube", AuthInfo: "localkube-admin", Namespace: "default"}
	cfg.CurrentContext = "localkube"
	return clientcmd.WriteToFile(*cfg, c.path("kubeconfig"))
}

func startEtcd(c config) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "localkube"
	cfg.Dir = c.path("etcd")
	client := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", c.etcdPort)}
	peer := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", c.etcdPort+1)}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{c.path("logs", "etcd.log")}
	cfg.UnsafeNoFsync = true // test data only; keeps etcd fast on shared disks
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("etcd not ready after 60s (see %s)", c.path("logs", "etcd.log"))
	}
}

func portFree(port int) error {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return fmt.Errorf("port %d on 127.0.0.1 is taken (another localkube or cluster?): %w", port, err)
	}
	return l.Close()
}

func waitReady(ctx context.Context, c config, token string, procs *children) error {
	ca, err := os.ReadFile(c.path("pki", "ca.crt"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("https://127.0.0.1:%d/readyz", c.port), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case name := <-procs.exited:
			return fmt.Errorf("%s exited before the apiserver became ready (see %s)", name, c.path("logs", name+".log"))
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("kube-apiserver not ready after 3m (see %s)", c.path("logs", "apiserver.log"))
}

// children runs the upstream components as child processes of this binary.
type children struct {
	mu     sync.Mutex
	procs  []child
	exited chan string
}

type child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *children) start(ctx context.Context, c config, name string, args []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited == nil {
		p.exited = make(chan string, 8)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(c.path("logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(self, append([]string{name}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// A child must not outlive us, even if we are killed without a chance to clean up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", name, err)
	}
	log.Printf("started %s (pid %d), log %s", name, cmd.Process.Pid, logf.Name())
	ch := child{cmd: cmd, done: make(chan struct{})}
	p.procs = append(p.procs, ch)
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(ch.done)
		if ctx.Err() == nil {
			p.exited <- name
		}
	}()
	return nil
}

// stopAll stops the children in reverse start order and waits for each.
func (p *children) stopAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.procs) - 1; i >= 0; i-- {
		ch := p.procs[i]
		_ = ch.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-ch.done:
		case <-time.After(20 * time.Second):
			_ = ch.cmd.Process.Kill()
			<-ch.done
		}
	}
}

// waitDefaultServiceAccount waits until the controller manager has created the `default`
// ServiceAccount, the sign that its controllers are running.
func waitDefaultServiceAccount(ctx context.Context, client kubernetes.Interface) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if _, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("the controller manager created no default ServiceAccount within 2m")
}
