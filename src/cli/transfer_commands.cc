// `agentctl session export|import|replay`. An export file is the ExportSession stream as
// length-delimited ExportChunk messages (a varint byte count, then the serialized chunk), the
// format protobuf's SerializeDelimitedToOstream writes; `session import` streams the chunks back
// to ImportSession unchanged (except the session id, with --id).
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <google/protobuf/util/delimited_message_util.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "cli/cli_common.h"
#include "cli/output.h"

namespace agentd::cli {
namespace {

namespace v1 = agentd::v1;

struct ExportOptions {
  std::string session_id;
  std::string file;  // "-" = stdout
};

struct ImportOptions {
  std::string file;  // "-" = stdin
  std::string new_session_id;
};

struct ReplayOptions {
  std::string session_id;
  std::string model;
  std::string new_session_id;
};

struct ExportCounts {
  int64_t events = 0;
  int64_t state = 0;
};

// Reads the stream into `out`; false (and the reason in *error) when a write fails.
bool WriteChunks(grpc::ClientReader<v1::ExportChunk>& reader, std::ostream& out,
                 ExportCounts* counts, std::string* error) {
  v1::ExportChunk chunk;
  while (reader.Read(&chunk)) {
    if (chunk.has_event()) ++counts->events;
    if (chunk.has_state()) ++counts->state;
    if (!google::protobuf::util::SerializeDelimitedToOstream(chunk, &out)) {
      *error = std::strerror(errno);
      return false;
    }
  }
  out.flush();
  if (!out) *error = std::strerror(errno);
  return static_cast<bool>(out);
}

int ExportSession(Connection& c, const ExportOptions& o) {
  const bool to_stdout = o.file == "-";
  if (to_stdout && isatty(STDOUT_FILENO)) {
    return UsageError("the export is binary: redirect stdout (-f - > FILE) or give -f FILE");
  }
  // A file is written under a temporary name and renamed once the export is complete, so a
  // failed export never leaves a truncated file that looks like a good one.
  const std::string temp = o.file + ".partial";
  std::ofstream file;
  if (!to_stdout) {
    file.open(temp, std::ios::binary | std::ios::trunc);
    if (!file) return UsageError(absl::StrCat("cannot write ", temp, ": ", std::strerror(errno)));
  }
  std::ostream& out = to_stdout ? std::cout : file;
  v1::ExportSessionRequest request;
  request.set_session_id(o.session_id);
  auto context = c.NewContext(o.session_id);
  auto reader = c.sessions().ExportSession(context.get(), request);
  ExportCounts counts;
  std::string write_error;
  const bool written = WriteChunks(*reader, out, &counts, &write_error);
  if (!written) context->TryCancel();
  const grpc::Status status = reader->Finish();
  if (!to_stdout) file.close();
  if (!written || !status.ok()) {
    if (!to_stdout) std::remove(temp.c_str());
    if (!written) {
      std::cerr << "error: cannot write " << (to_stdout ? "stdout" : temp) << ": " << write_error
                << std::endl;
      return kExitServerError;
    }
    return c.Fail(status, *context);
  }
  if (!to_stdout && std::rename(temp.c_str(), o.file.c_str()) != 0) {
    std::cerr << "error: cannot rename " << temp << " to " << o.file << ": " << std::strerror(errno)
              << std::endl;
    std::remove(temp.c_str());
    return kExitServerError;
  }
  (to_stdout ? std::cerr : std::cout)
      << "exported session " << o.session_id << " (" << counts.events << " events, " << counts.state
      << " state entries) to " << (to_stdout ? "stdout" : o.file) << std::endl;
  return kExitOk;
}

// Every chunk of an export file; a usage error (exit 2) naming the file when it is not one.
int ReadExportFile(const std::string& path, std::vector<v1::ExportChunk>* chunks) {
  const bool from_stdin = path == "-";
  std::ifstream file;
  if (!from_stdin) {
    file.open(path, std::ios::binary);
    if (!file) return UsageError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  const std::string name = from_stdin ? "stdin" : path;
  google::protobuf::io::IstreamInputStream input(from_stdin ? &std::cin : &file);
  while (true) {
    v1::ExportChunk chunk;
    bool clean_eof = false;
    if (!google::protobuf::util::ParseDelimitedFromZeroCopyStream(&chunk, &input, &clean_eof)) {
      if (clean_eof) break;
      return UsageError(absl::StrCat(name, ": not a session export (chunk ", chunks->size() + 1,
                                     " is malformed); make one with `agentctl session export`"));
    }
    chunks->push_back(std::move(chunk));
  }
  if (chunks->empty() || !chunks->front().has_session()) {
    return UsageError(absl::StrCat(name, ": not a session export (",
                                   chunks->empty() ? "it is empty" : "no session first",
                                   "); make one with `agentctl session export`"));
  }
  return kExitOk;
}

int ImportSession(Connection& c, const ImportOptions& o) {
  std::vector<v1::ExportChunk> chunks;
  if (int rc = ReadExportFile(o.file, &chunks); rc != kExitOk) return rc;
  if (!o.new_session_id.empty()) {
    for (v1::ExportChunk& chunk : chunks) {
      if (chunk.has_session()) chunk.mutable_session()->set_session_id(o.new_session_id);
      if (chunk.has_event()) chunk.mutable_event()->set_session_id(o.new_session_id);
    }
  }
  const std::string wanted_id = chunks.front().session().session_id();
  v1::Session response;
  auto context = c.NewContext(wanted_id);
  auto writer = c.sessions().ImportSession(context.get(), &response);
  for (const v1::ExportChunk& chunk : chunks) {
    if (!writer->Write(chunk)) break;  // the server ended the call: Finish() says why
  }
  writer->WritesDone();
  const grpc::Status status = writer->Finish();
  if (!status.ok()) return c.Fail(status, *context);
  if (response.session_id() != wanted_id) {
    std::cerr << "note: session id " << wanted_id << " is taken in this project; imported as "
              << response.session_id() << std::endl;
  }
  if (c.structured()) return c.Print(response), kExitOk;
  PrintSessions({response});
  return kExitOk;
}

int ReplaySession(Connection& c, const ReplayOptions& o) {
  v1::ReplaySessionRequest request;
  request.set_session_id(o.session_id);
  request.set_model(o.model);
  request.set_new_session_id(o.new_session_id);
  v1::ReplaySessionResponse response;
  auto context = c.NewContext(o.session_id);
  const grpc::Status status = c.sessions().ReplaySession(context.get(), request, &response);
  if (!status.ok()) return c.Fail(status, *context);
  if (c.structured()) return c.Print(response), kExitOk;
  PrintSessions({response.session()});
  std::cout << "\n";
  Table turns({"turn", "status", "usage", "output"});
  for (const v1::TurnResult& r : response.results()) {
    turns.Add({r.turn_id(), TurnStatusName(r.status()), UsageText(r.usage()),
               OneLine(r.output_text(), 80)});
  }
  turns.Print(std::cout);
  return kExitOk;
}

}  // namespace

void AddSessionTransferCommands(CLI::App& session, Dispatch* d) {
  auto e = std::make_shared<ExportOptions>();
  CLI::App* exp = AddCommand(
      session, "export",
      "Write a session (its agent version, events and state) to a file that `session import` "
      "reads",
      "  agentctl session export sess_0123 -f sess_0123.agentd\n"
      "  agentctl session export sess_0123 -f - | ssh other agentctl session import -f -");
  exp->add_option("SESSION", e->session_id, "Session id")->required();
  exp->add_option("--file,-f", e->file, "Output file, or - for stdout")->required();
  exp->callback([d, e] { d->action = [e](Connection& c) { return ExportSession(c, *e); }; });

  auto i = std::make_shared<ImportOptions>();
  CLI::App* imp = AddCommand(
      session, "import",
      "Create a session from a `session export` file (events byte-identical; the agent version "
      "is reused or created)",
      "  agentctl session import -f sess_0123.agentd\n"
      "  agentctl session import -f sess_0123.agentd --id restored-0123");
  imp->add_option("--file,-f", i->file, "Export file, or - for stdin")->required();
  imp->add_option("--id", i->new_session_id,
                  "Id of the new session (default: the exported id; a new one if it is taken)");
  imp->callback([d, i] { d->action = [i](Connection& c) { return ImportSession(c, *i); }; });

  auto r = std::make_shared<ReplayOptions>();
  CLI::App* rep =
      AddCommand(session, "replay",
                 "Re-run a session's inputs with another model in a new session (model evaluation)",
                 "  agentctl session replay sess_0123 --model small\n"
                 "  agentctl session replay sess_0123 --model echo --id replay-1 -o json");
  rep->add_option("SESSION", r->session_id, "Session id to replay")->required();
  rep->add_option("--model", r->model, "Model to replay with")->required();
  rep->add_option("--id", r->new_session_id, "Id of the new session (default: server-generated)");
  rep->callback([d, r] { d->action = [r](Connection& c) { return ReplaySession(c, *r); }; });
}

}  // namespace agentd::cli
