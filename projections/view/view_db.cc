#include "projections/view/view_db.h"

#include <stdlib.h>

#include <chrono>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>

#include "eventlog/local/rocks_logger.h"
#include "projections/view/encoding.h"

namespace a3::projections::view {

namespace {

namespace fs = std::filesystem;

constexpr const char* kFamilyNames[] = {
    "accounts", "addresses", "mailboxes", "mailbox_state", "messages", "expunged",
    "blobs",    "blob_refs", "mime",      "subscriptions", "applied",  "meta",
    "staging",  "changes",   "queue",     "queue_due",
};
static_assert(std::size(kFamilyNames) == static_cast<std::size_t>(Family::count_));

}  // namespace

std::unique_ptr<ViewDb> ViewDb::open(const fs::path& path, bool read_only,
                                     std::size_t block_cache) {
  std::unique_ptr<ViewDb> v(new ViewDb());
  v->path_ = path;
  v->read_only_ = read_only;
  v->block_cache_ = block_cache;
  rocksdb::Options opts;
  opts.create_if_missing = !read_only;
  opts.create_missing_column_families = !read_only;
  opts.compression = rocksdb::kLZ4Compression;
  // Bulk rebuilds skip the WAL (projections/view/batch.cc): flushing every
  // column family together keeps what reaches disk a consistent commit.
  opts.atomic_flush = true;
  if (read_only) opts.max_open_files = -1;
  opts.info_log = eventlog::local::rocks_logger("view");

  // Bloom filters: most point reads of the projector are misses (a new event
  // id, a new blob) that should not touch SST blocks.
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  // One cache for every column family, so the budget is the whole view's.
  table.block_cache = rocksdb::NewLRUCache(block_cache);
  opts.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  families.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions(opts));
  for (const char* name : kFamilyNames) {
    rocksdb::ColumnFamilyOptions cf(opts);
    if (std::string_view(name) == "blobs") {
      // Message bodies: large values live in blob files, outside compactions.
      cf.enable_blob_files = true;
      cf.min_blob_size = 4096;
      cf.blob_compression_type = rocksdb::kLZ4Compression;
    }
    families.emplace_back(name, cf);
  }
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s;
  if (read_only) {
    if (!fs::exists(path / "CURRENT")) {
      throw std::runtime_error(fmt::format("view: no mailbox view at {}", path.string()));
    }
    // A read-only instance, not a secondary one: RocksDB 7.8's secondary
    // instances crash reading values in blob files (message bodies). While
    // the daemon compacts, a file the manifest named may be gone by the
    // time it is opened: the open is tried again on a newer manifest.
    for (int attempt = 0;; ++attempt) {
      v->handles_.clear();
      s = rocksdb::DB::OpenForReadOnly(opts, path.string(), families, &v->handles_, &raw);
      const bool vanished = (s.IsIOError() || s.IsCorruption() || s.IsPathNotFound()) &&
                            s.ToString().find("No such file") != std::string::npos;
      if (s.ok() || !vanished || attempt == 20) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  } else {
    std::error_code ec;
    fs::create_directories(path, ec);
    s = rocksdb::DB::Open(opts, path.string(), families, &v->handles_, &raw);
  }
  if (!s.ok()) {
    throw std::runtime_error(fmt::format("view: cannot open {}: {}", path.string(), s.ToString()));
  }
  v->db_.reset(raw);
  if (!read_only) v->check_format();
  return v;
}

// A new view gets the current format; one that has applied events under an
// older format cannot be used as is.
void ViewDb::check_format() {
  std::string value;
  const auto s = db_->Get(rocksdb::ReadOptions(), cf(Family::meta), "format", &value);
  if (s.ok()) {
    if (value.size() == 4 && static_cast<int>(get_be32(value, 0)) == kViewFormat) return;
    throw std::runtime_error(
        fmt::format("view: {} has format {}, this version needs {}: rebuild it with `a3ctl replay`",
                    path_.string(), value.size() == 4 ? static_cast<int>(get_be32(value, 0)) : -1,
                    kViewFormat));
  }
  if (!positions().empty()) {
    throw std::runtime_error(
        fmt::format("view: {} was built by an older version (format 1): rebuild it with "
                    "`a3ctl replay`",
                    path_.string()));
  }
  std::string f;
  put_be32(f, static_cast<std::uint32_t>(kViewFormat));
  db_->Put(rocksdb::WriteOptions(), cf(Family::meta), "format", f);
}

ViewDb::~ViewDb() {
  close();
}

void ViewDb::close() {
  if (db_) {
    for (auto* h : handles_)
      db_->DestroyColumnFamilyHandle(h);
    handles_.clear();
    db_->Close();
    db_.reset();
  }
}

void ViewDb::catch_up() {
  if (!read_only_) return;
  // A read-only instance sees the files as they were when it opened: open
  // them again. (The caller holds no iterator across this.)
  auto fresh = open(path_, true, block_cache_);
  close();
  db_ = std::move(fresh->db_);
  handles_ = std::move(fresh->handles_);
  fresh->handles_.clear();
}

std::map<std::int32_t, std::int64_t> ViewDb::positions() const {
  return positions(rocksdb::ReadOptions());
}

std::map<std::int32_t, std::int64_t> ViewDb::positions(const rocksdb::ReadOptions& ro) const {
  std::map<std::int32_t, std::int64_t> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf(Family::meta)));
  for (it->Seek("next/"); it->Valid() && it->key().starts_with("next/"); it->Next()) {
    const auto k = it->key().ToStringView();
    if (k.size() != 9 || it->value().size() != 8) continue;
    out[static_cast<std::int32_t>(get_be32(k, 5))] =
        static_cast<std::int64_t>(get_be64(it->value().ToStringView()));
  }
  return out;
}

std::string ViewDb::digest() const {
  rocksdb::ReadOptions ro;
  return digest(ro);
}

ViewDb::Digested ViewDb::digest_with_positions() const {
  // One snapshot for both: the projector may write meanwhile.
  const rocksdb::Snapshot* snapshot = db_->GetSnapshot();
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  Digested d{positions(ro), digest(ro)};
  db_->ReleaseSnapshot(snapshot);
  return d;
}

std::string ViewDb::digest(rocksdb::ReadOptions ro) const {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  auto feed = [&](std::string_view s) {
    std::string len;
    put_be64(len, s.size());
    EVP_DigestUpdate(ctx, len.data(), len.size());
    EVP_DigestUpdate(ctx, s.data(), s.size());
  };
  ro.verify_checksums = true;
  for (int f = 0; f < static_cast<int>(Family::count_); ++f) {
    feed(kFamilyNames[f]);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, handles_[f + 1]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      feed(it->key().ToStringView());
      feed(it->value().ToStringView());
    }
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx, md, &n);
  EVP_MD_CTX_free(ctx);
  std::string hex;
  for (unsigned int i = 0; i < n; ++i)
    hex += fmt::format("{:02x}", md[i]);
  return hex;
}

}  // namespace a3::projections::view
