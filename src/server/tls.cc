#include "server/tls.h"

#include <grpcpp/security/server_credentials.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace agentd::server {
namespace {

// "tls.cert_file (/etc/agentd/server.crt)": how files are named in errors.
std::string Name(const char* key, const std::string& path) {
  return absl::StrCat(key, " (", path, ")");
}

absl::StatusOr<std::string> ReadFile(const char* key, const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(Name(key, path), ": cannot be read: ", std::strerror(errno)));
  }
  std::string text;
  char buf[16384];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) text.append(buf, static_cast<size_t>(n));
  const int read_errno = errno;
  ::close(fd);
  if (n < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(Name(key, path), ": cannot be read: ", std::strerror(read_errno)));
  }
  if (text.empty()) return absl::InvalidArgumentError(absl::StrCat(Name(key, path), ": is empty"));
  return text;
}

// Never prompts for a passphrase: encrypted keys are refused instead.
int NoPassphrase(char*, int, int, void*) { return 0; }

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using Cert = std::unique_ptr<X509, X509Free>;
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;

Bio MemBio(const std::string& pem) {
  return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// The first certificate of a PEM bundle; INVALID_ARGUMENT if it holds none.
absl::StatusOr<Cert> FirstCertificate(const char* key, const std::string& path,
                                      const std::string& pem) {
  Bio bio = MemBio(pem);
  Cert cert(PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr));
  ERR_clear_error();
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(Name(key, path), ": no PEM certificate (\"-----BEGIN CERTIFICATE-----\") found"));
  }
  return cert;
}

absl::Status CheckKeyMatches(const std::string& cert_path, const X509* cert,
                             const std::string& key_path, const std::string& key_pem) {
  Bio bio = MemBio(key_pem);
  Key key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  ERR_clear_error();
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        Name("tls.key_file", key_path),
        ": no PEM private key found (passphrase-protected keys are not supported)"));
  }
  const int matches = X509_check_private_key(cert, key.get());
  ERR_clear_error();
  if (matches != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(Name("tls.key_file", key_path), ": does not match the certificate in ",
                     Name("tls.cert_file", cert_path)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> BuildServerCredentials(
    const Config& config) {
  const TlsConfig& tls = config.tls;
  if (!tls.enabled()) {
    absl::Status allowed = CheckPlaintextAllowed(config);
    if (!allowed.ok()) return allowed;
    return grpc::InsecureServerCredentials();
  }
  if (tls.key_file.empty()) {
    return absl::InvalidArgumentError("tls.key_file: must be set when tls.cert_file is set");
  }
  absl::StatusOr<std::string> cert_pem = ReadFile("tls.cert_file", tls.cert_file);
  if (!cert_pem.ok()) return cert_pem.status();
  absl::StatusOr<std::string> key_pem = ReadFile("tls.key_file", tls.key_file);
  if (!key_pem.ok()) return key_pem.status();
  absl::StatusOr<Cert> cert = FirstCertificate("tls.cert_file", tls.cert_file, *cert_pem);
  if (!cert.ok()) return cert.status();
  absl::Status matches = CheckKeyMatches(tls.cert_file, cert->get(), tls.key_file, *key_pem);
  if (!matches.ok()) return matches;

  std::string client_ca_pem;
  if (!tls.client_ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadFile("tls.client_ca_file", tls.client_ca_file);
    if (!ca.ok()) return ca.status();
    absl::StatusOr<Cert> ca_cert = FirstCertificate("tls.client_ca_file", tls.client_ca_file, *ca);
    if (!ca_cert.ok()) return ca_cert.status();
    client_ca_pem = *std::move(ca);
  }

  grpc::SslServerCredentialsOptions options(
      client_ca_pem.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                            : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = std::move(client_ca_pem);
  options.pem_key_cert_pairs.push_back({*std::move(key_pem), *std::move(cert_pem)});
  return grpc::SslServerCredentials(options);
}

}  // namespace agentd::server
