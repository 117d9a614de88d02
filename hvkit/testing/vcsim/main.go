// vcsim-launcher: runs VMware's vSphere API simulator (govmomi/simulator) for hvkit's tests.
//
// Debian ships the simulator library (golang-github-vmware-govmomi-dev) but no vcsim program; this
// small launcher is hvkit's own. It builds with:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o vcsim-launcher main.go
//
// It prints one JSON line on stdout once the server listens ({"url": ..., "cert": ...}) and runs
// until stdin closes or it gets SIGINT/SIGTERM, then removes the simulator's temporary datastores.
//
// vcsim 0.24 has no call that takes a host down (no DisconnectHost_Task), so the launcher adds one test
// hook: POST /hvkit/host-state?host=<moref>&state=notResponding|disconnected|connected (see hostState).
package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io/ioutil"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

func main() {
	esx := flag.Bool("esx", false, "simulate a standalone ESXi host instead of a vCenter")
	listen := flag.String("l", "127.0.0.1:0", "listen address (host:port; port 0 picks a free one)")
	username := flag.String("username", "user", "login user name")
	password := flag.String("password", "pass", "login password")
	certFile := flag.String("cert", "", "write the server's self-signed certificate (PEM) to this file")
	plain := flag.Bool("plain-http", false, "serve plain HTTP instead of HTTPS")
	autostart := flag.Bool("autostart", true, "power on the VMs the model creates")
	dc := flag.Int("dc", 1, "datacenters (vCenter mode)")
	cluster := flag.Int("cluster", 1, "clusters per datacenter (vCenter mode)")
	host := flag.Int("host", 3, "hosts per cluster (vCenter mode)")
	standalone := flag.Int("standalone-host", 1, "standalone hosts per datacenter (vCenter mode)")
	pool := flag.Int("pool", 0, "child resource pools per cluster (vCenter mode)")
	pg := flag.Int("pg", 1, "distributed portgroups per datacenter (vCenter mode)")
	ds := flag.Int("ds", 1, "datastores")
	vm := flag.Int("vm", 2, "VMs per resource pool (and per standalone host)")
	folder := flag.Int("folder", 0, "folders holding each datacenter (vCenter mode)")
	delay := flag.Int("delay", 0, "milliseconds of delay added to every SOAP call")
	flag.Parse()

	var model *simulator.Model
	if *esx {
		model = simulator.ESX()
	} else {
		model = simulator.VPX()
		model.Datacenter = *dc
		model.Cluster = *cluster
		model.ClusterHost = *host
		model.Host = *standalone
		model.Pool = *pool
		model.Portgroup = *pg
		model.Folder = *folder
	}
	model.Datastore = *ds
	model.Machine = *vm
	model.Autostart = *autostart
	model.DelayConfig.Delay = *delay

	if err := model.Create(); err != nil {
		fail("create model: %s", err)
	}
	defer model.Remove()

	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*username, *password)}
	var certPEM []byte
	if !*plain {
		cert, pemBytes, err := selfSigned()
		if err != nil {
			fail("certificate: %s", err)
		}
		certPEM = pemBytes
		model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	model.Service.HandleFunc("/hvkit/host-state", hostState)
	server := model.Service.NewServer()
	defer server.Close()

	if *certFile != "" && certPEM != nil {
		if err := ioutil.WriteFile(*certFile, certPEM, 0o644); err != nil {
			fail("write certificate: %s", err)
		}
	}
	u := *server.URL
	u.User = nil
	line, _ := json.Marshal(map[string]string{"url": u.String(), "cert": *certFile})
	fmt.Println(string(line))

	done := make(chan os.Signal, 2)
	signal.Notify(done, syscall.SIGINT, syscall.SIGTERM)
	go func() { // the parent closing our stdin also stops us, so no simulator outlives its test run
		reader := bufio.NewReader(os.Stdin)
		for {
			if _, err := reader.ReadByte(); err != nil {
				done <- syscall.SIGTERM
				return
			}
		}
	}()
	<-done
}

// hostState sets a host's runtime.connectionState as vCenter does when it loses (or regains) the host:
// while not connected the host's power state is unknown and its VMs' connectionState is disconnected;
// the VMs keep their last known power state. Nothing else changes (no VM moves or stops).
func hostState(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	ref := types.ManagedObjectReference{Type: "HostSystem", Value: r.URL.Query().Get("host")}
	host, ok := simulator.Map.Get(ref).(*simulator.HostSystem)
	if !ok {
		http.Error(w, "no such host", http.StatusNotFound)
		return
	}
	state := types.HostSystemConnectionState(r.URL.Query().Get("state"))
	vmState := types.VirtualMachineConnectionStateDisconnected
	power := types.HostSystemPowerStateUnknown
	switch state {
	case types.HostSystemConnectionStateConnected:
		vmState = types.VirtualMachineConnectionStateConnected
		power = types.HostSystemPowerStatePoweredOn
	case types.HostSystemConnectionStateNotResponding, types.HostSystemConnectionStateDisconnected:
	default:
		http.Error(w, "state is connected, notResponding or disconnected", http.StatusBadRequest)
		return
	}
	var vms []types.ManagedObjectReference
	simulator.Map.WithLock(host, func() {
		host.Runtime.ConnectionState = state
		host.Runtime.PowerState = power
		vms = append(vms, host.Vm...)
	})
	for _, vmRef := range vms {
		if vm, ok := simulator.Map.Get(vmRef).(*simulator.VirtualMachine); ok {
			simulator.Map.WithLock(vm, func() {
				vm.Runtime.ConnectionState = vmState
				vm.Summary.Runtime.ConnectionState = vmState
			})
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// selfSigned makes a CA-flagged certificate for 127.0.0.1 and localhost, usable as its own trust anchor.
func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "hvkit vcsim", Organization: []string{"hvkit tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		DNSNames:              []string{"localhost"},
		SubjectKeyId:          []byte{1, 2, 3, 4, 5, 6, 7, 8},
		AuthorityKeyId:        []byte{1, 2, 3, 4, 5, 6, 7, 8},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	return cert, certPEM, err
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "vcsim-launcher: "+format+"\n", args...)
	os.Exit(1)
}
