package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/linkgate/linkgate/gateway"
)

// ownerTimeout bounds owner create's Redis work.
const ownerTimeout = 15 * time.Second

// runOwner runs "linkgate owner ARGS..." and returns the exit status.
func runOwner(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return ownerGroup.run(ctx, &cliEnv{stdin: os.Stdin, stdout: stdout, stderr: stderr}, args)
}

var ownerGroup = &cliGroup{
	name:    "owner",
	summary: "Manage owners (tenants). Owners are made on the gateway's Redis, not over the API.",
	common: `Every command takes:
  --redis ADDR                   the gateway's Redis: redis://[user:pass@]host:port/db,
                                 or host:port[,host:port...] for Sentinel or Cluster
                                 [LINKGATE_REDIS_URL]
  --redis-sentinel-master NAME   with Sentinel (alias --sentinel-master)
                                 [LINKGATE_REDIS_SENTINEL_MASTER]
  --redis-cluster                with a single Cluster seed [LINKGATE_REDIS_CLUSTER]
  --json                         print JSON, for scripts
A host:port list takes its credentials from LINKGATE_REDIS_USERNAME and
LINKGATE_REDIS_PASSWORD.
`,
	commands: []*cliCommand{{
		name: "create", args: "NAME [--redis ADDR] [--json]", summary: "create an owner and print its API key",
		help: `Create an owner and print its id and API key. The key is shown only
once: the gateway stores only its hash. Give it to the owner's platform as
LINKGATE_API_KEY or as "Authorization: Bearer <key>".`,
		run: ownerCreate,
	}},
}

func ownerCreate(ctx context.Context, e *cliEnv, args []string) error {
	fs := e.newFlags()
	// The flags are serve's, but their defaults are not taken from the
	// environment here: usage would print a Redis URL's password.
	var rc redisConfig
	fs.StringVar(&rc.url, "redis", "", "the gateway's Redis `address`: redis://[user:pass@]host:port/db, or host:port[,host:port...] for Sentinel or Cluster [LINKGATE_REDIS_URL]")
	fs.StringVar(&rc.sentinelMaster, "redis-sentinel-master", "", "Sentinel master `name`; --redis then lists the sentinels [LINKGATE_REDIS_SENTINEL_MASTER]")
	fs.StringVar(&rc.sentinelMaster, "sentinel-master", "", "the same as --redis-sentinel-master")
	fs.BoolVar(&rc.cluster, "redis-cluster", false, "treat --redis as Redis Cluster seed addresses, even a single one [LINKGATE_REDIS_CLUSTER]")
	fs.BoolVar(&e.json, "json", false, "print JSON, for scripts")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	set := visited(fs)
	if !set["redis"] {
		rc.url = os.Getenv("LINKGATE_REDIS_URL")
	}
	if !set["redis-sentinel-master"] && !set["sentinel-master"] {
		rc.sentinelMaster = os.Getenv("LINKGATE_REDIS_SENTINEL_MASTER")
	}
	if !set["redis-cluster"] {
		rc.cluster = envBool("LINKGATE_REDIS_CLUSTER")
	}
	name, err := oneArg(pos, "owner NAME (quote a name with spaces)")
	if err != nil {
		return err
	}
	if rc.url == "" {
		return usageErrorf("no Redis: give --redis or set LINKGATE_REDIS_URL (an embedded demo Redis cannot be reached; linkgate serve prints its demo key)")
	}
	if strings.Contains(rc.url, "://") {
		// url.Parse quotes the URL, password included, in its errors.
		u, err := url.Parse(rc.url)
		if err != nil {
			return usageErrorf("--redis: not a valid URL")
		}
		if p, ok := u.User.Password(); ok {
			e.secrets = append(e.secrets, p)
		}
	}
	e.secrets = append(e.secrets, os.Getenv("LINKGATE_REDIS_PASSWORD"))
	rdb, err := rc.client()
	if err != nil {
		return usageErrorf("%v", err)
	}
	defer rdb.Close()

	ctx, cancel := context.WithTimeout(ctx, ownerTimeout)
	defer cancel()
	owner, key, err := gateway.NewOwners(rdb).Create(ctx, name)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(struct {
			ID        string    `json:"id"`
			Name      string    `json:"name"`
			CreatedAt time.Time `json:"createdAt"`
			APIKey    string    `json:"apiKey"`
		}{owner.ID, owner.Name, owner.CreatedAt, key})
	}
	fmt.Fprintf(e.stdout, "owner id: %s\nowner name: %s\nowner api key: %s\n", owner.ID, clean(owner.Name), key)
	fmt.Fprintln(e.stderr, "Keep the API key now: it is not shown again.")
	return nil
}
