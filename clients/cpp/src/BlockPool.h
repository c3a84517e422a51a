// Internal: an allocator that keeps freed blocks per thread for reuse. A subscriber's dispatch
// thread makes and releases one Message per delivery; reusing their memory saves an allocation
// and a free per message. Blocks may be released on any thread (they are plain operator new
// memory, interchangeable between threads).
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace MessagingMesh {
namespace detail {

template <class T>
struct BlockPool {
    using value_type = T;
    BlockPool() noexcept = default;
    template <class U>
    BlockPool(const BlockPool<U>&) noexcept {}

    T* allocate(std::size_t count) {
        if (count == 1) {
            std::vector<void*>& blocks = cache().blocks;
            if (!blocks.empty()) {
                void* block = blocks.back();
                blocks.pop_back();
                return static_cast<T*>(block);
            }
        }
        return static_cast<T*>(::operator new(count * sizeof(T)));
    }

    void deallocate(T* pointer, std::size_t count) noexcept {
        if (count == 1) {
            Cache& c = cache();
            if (c.blocks.size() < kKept) {
                try {
                    c.blocks.push_back(pointer);
                    return;
                } catch (...) {
                }
            }
        }
        ::operator delete(pointer);
    }

    template <class U>
    bool operator==(const BlockPool<U>&) const noexcept { return true; }
    template <class U>
    bool operator!=(const BlockPool<U>&) const noexcept { return false; }

private:
    static constexpr std::size_t kKept = 256;
    struct Cache {
        std::vector<void*> blocks;
        ~Cache() {
            for (void* block : blocks) ::operator delete(block);
        }
    };
    static Cache& cache() {
        thread_local Cache instance;
        return instance;
    }
};

}  // namespace detail
}  // namespace MessagingMesh
