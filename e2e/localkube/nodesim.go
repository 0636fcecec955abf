package main

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// nodeSim stands in for kubelets: it registers Nodes and keeps them Ready, and for each pod the
// scheduler binds to one of them it reports the pod Running and Ready with an IP from the node's
// pod CIDR, and it confirms deletions as a kubelet would. No container runs; the IPs are data
// only. With an external pod runtime it leaves pods alone: that runtime does all of this.
type nodeSim struct {
	client kubernetes.Interface
	nodes  int
	pods   bool // whether to run the pods (false: an external runtime does)

	mu   sync.Mutex
	next map[string]netip.Addr // per node: the next pod IP to hand out
	used map[netip.Addr]string // pod IP -> pod UID
}

func newNodeSim(client kubernetes.Interface, nodes int, pods bool) *nodeSim {
	return &nodeSim{client: client, nodes: nodes, pods: pods, next: map[string]netip.Addr{}, used: map[netip.Addr]string{}}
}

func nodeName(i int) string { return fmt.Sprintf("localkube-node-%d", i) }

// Node i gets zone zone-<letter>, node IP 172.30.0.(10+i) and pod CIDR 10.244.i.0/24.
func nodeZone(i int) string { return fmt.Sprintf("zone-%c", 'a'+i) }

func (s *nodeSim) registerNodes(ctx context.Context) error {
	for i := 0; i < s.nodes; i++ {
		cidr := fmt.Sprintf("10.244.%d.0/24", i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name: nodeName(i),
				Labels: map[string]string{
					"kubernetes.io/hostname":        nodeName(i),
					"kubernetes.io/os":              "linux",
					"kubernetes.io/arch":            "amd64",
					"topology.kubernetes.io/zone":   nodeZone(i),
					"topology.kubernetes.io/region": "localkube",
				},
			},
			Spec: corev1.NodeSpec{PodCIDR: cidr, PodCIDRs: []string{cidr}},
		}
		if _, err := s.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		if err := s.markNodeReady(ctx, i); err != nil {
			return err
		}
		s.next[nodeName(i)] = netip.MustParseAddr(fmt.Sprintf("10.244.%d.2", i))
	}
	return nil
}

func (s *nodeSim) markNodeReady(ctx context.Context, i int) error {
	node, err := s.client.CoreV1().Nodes().Get(ctx, nodeName(i), metav1.GetOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("16"),
		corev1.ResourceMemory: resource.MustParse("64Gi"),
		corev1.ResourcePods:   resource.MustParse("250"),
	}
	node.Status = corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity,
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "localkube simulated node", LastHeartbeatTime: now, LastTransitionTime: now,
		}},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("172.30.0.%d", 10+i)},
			{Type: corev1.NodeHostName, Address: nodeName(i)},
		},
		NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.34.4", OperatingSystem: "linux", Architecture: "amd64"},
	}
	node, err = s.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	// The API server taints new nodes not-ready; the node lifecycle controller, which we do not
	// run, lifts the taint once the node reports Ready. Do what it would.
	var taints []corev1.Taint
	for _, t := range node.Spec.Taints {
		if t.Key != corev1.TaintNodeNotReady && t.Key != corev1.TaintNodeUnreachable {
			taints = append(taints, t)
		}
	}
	if len(taints) != len(node.Spec.Taints) {
		node.Spec.Taints = taints
		_, err = s.client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
	}
	return err
}

func (s *nodeSim) run(ctx context.Context) {
	go s.heartbeat(ctx)
	if !s.pods {
		<-ctx.Done()
		return
	}
	factory := informers.NewSharedInformerFactory(s.client, 0)
	pods := factory.Core().V1().Pods()
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	enqueue := func(obj interface{}) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			queue.Add(key)
		}
	}
	_, _ = pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj interface{}) { enqueue(obj) },
		DeleteFunc: func(obj interface{}) {
			if pod, ok := obj.(*corev1.Pod); ok {
				s.release(pod)
			}
		},
	})
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	// Remember the IPs that pods from an earlier run already hold.
	if all, err := pods.Lister().List(labels.Everything()); err == nil {
		s.mu.Lock()
		for _, p := range all {
			if ip, err := netip.ParseAddr(p.Status.PodIP); err == nil {
				s.used[ip] = string(p.UID)
			}
		}
		s.mu.Unlock()
	}
	go func() { <-ctx.Done(); queue.ShutDown() }()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				key, quit := queue.Get()
				if quit {
					return
				}
				err := s.sync(ctx, pods.Lister(), key)
				if err != nil && ctx.Err() == nil {
					log.Printf("nodesim: %s: %v", key, err)
					queue.AddRateLimited(key)
				} else {
					queue.Forget(key)
				}
				queue.Done(key)
			}
		}()
	}
	wg.Wait()
}

// heartbeat keeps the nodes' heartbeats fresh.
func (s *nodeSim) heartbeat(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for i := 0; i < s.nodes; i++ {
				_ = s.markNodeReady(ctx, i)
			}
		}
	}
}

func (s *nodeSim) sync(ctx context.Context, lister corelisters.PodLister, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := lister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	if pod.Spec.NodeName == "" {
		return nil
	}
	if _, ours := s.next[pod.Spec.NodeName]; !ours {
		return nil
	}
	if pod.DeletionTimestamp != nil {
		// A kubelet confirms the deletion once its containers have stopped; ours never ran.
		zero := int64(0)
		err := s.client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero,
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	}
	if pod.Status.Phase == corev1.PodRunning || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil
	}
	return s.start(ctx, pod.DeepCopy())
}

// start reports a bound pod as started: all init containers done (or running, for sidecars),
// all containers running and ready.
func (s *nodeSim) start(ctx context.Context, pod *corev1.Pod) error {
	node, err := s.client.CoreV1().Nodes().Get(ctx, pod.Spec.NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	ip := pod.Status.PodIP
	if ip == "" {
		if pod.Spec.HostNetwork {
			ip = node.Status.Addresses[0].Address
		} else if ip, err = s.allocate(pod); err != nil {
			return err
		}
	}
	now := metav1.Now()
	st := &pod.Status
	st.Phase = corev1.PodRunning
	st.HostIP = node.Status.Addresses[0].Address
	st.HostIPs = []corev1.HostIP{{IP: st.HostIP}}
	st.PodIP = ip
	st.PodIPs = []corev1.PodIP{{IP: ip}}
	st.StartTime = &now
	st.Conditions = nil
	for _, t := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	st.InitContainerStatuses = nil
	for _, c := range pod.Spec.InitContainers {
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: c.Image, ContainerID: "localkube://" + string(pod.UID) + "/" + c.Name}
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			started := true
			cs.Ready, cs.Started = true, &started
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: now}
		} else {
			cs.State.Terminated = &corev1.ContainerStateTerminated{Reason: "Completed", StartedAt: now, FinishedAt: now}
		}
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
	}
	st.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		started := true
		st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: true, Started: &started,
			ContainerID: "localkube://" + string(pod.UID) + "/" + c.Name,
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	_, err = s.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil // a newer version is queued already, or the pod is gone
	}
	return err
}

func (s *nodeSim) allocate(pod *corev1.Pod) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ip, uid := range s.used {
		if uid == string(pod.UID) {
			return ip.String(), nil
		}
	}
	start := s.next[pod.Spec.NodeName]
	ip := start
	for {
		if _, taken := s.used[ip]; !taken {
			break
		}
		ip = ip.Next()
		if ip.As4()[3] == 255 {
			b := ip.As4()
			b[3] = 2
			ip = netip.AddrFrom4(b)
		}
		if ip == start {
			return "", fmt.Errorf("node %s has no pod IPs left", pod.Spec.NodeName)
		}
	}
	s.used[ip] = string(pod.UID)
	s.next[pod.Spec.NodeName] = ip.Next()
	return ip.String(), nil
}

func (s *nodeSim) release(pod *corev1.Pod) {
	if ip, err := netip.ParseAddr(pod.Status.PodIP); err == nil {
		s.mu.Lock()
		if s.used[ip] == string(pod.UID) {
			delete(s.used, ip)
		}
		s.mu.Unlock()
	}
}
