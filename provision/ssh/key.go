package ssh

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// GenerateKey makes a fresh ed25519 key pair for a build whose template
// gives neither a password nor a key. It returns the private key as an
// OpenSSH PEM block (for Config.PrivateKey) and the public key as an
// authorized_keys line, "ssh-ed25519 AAAA... kiln".
func GenerateKey() (pemBytes []byte, authorizedKey string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("generating ssh key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "kiln")
	if err != nil {
		return nil, "", fmt.Errorf("encoding ssh key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, "", fmt.Errorf("encoding ssh public key: %w", err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " kiln"
	return pem.EncodeToMemory(block), line, nil
}
