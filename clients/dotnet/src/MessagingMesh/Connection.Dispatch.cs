using System;
using System.Collections.Generic;
using System.Threading;

namespace MessagingMesh
{
    // Running subscription callbacks: the dispatcher thread (the queue mode's counterpart is ProcessMessageQueue).
    public sealed partial class Connection
    {
        private void DispatchLoop()
        {
            var taken = new List<Delivery>();
            while (true)
            {
                lock (queue)
                {
                    while (queue.Count == 0)
                    {
                        if (queueClosed) return;
                        Monitor.Wait(queue);
                    }
                    while (queue.Count > 0) taken.Add(queue.Dequeue());
                }
                foreach (var delivery in taken)
                {
                    if (queueClosed) break;
                    Deliver(delivery);
                }
                taken.Clear();
            }
        }

        /// <summary>
        /// Decodes one queued message and runs its callback. An undecodable body is dropped and
        /// reported with its subject; a callback that throws is logged; neither stops dispatch.
        /// </summary>
        private void Deliver(Delivery delivery)
        {
            var subscription = delivery.Subscription;
            subscription.Dequeued(delivery.Frame.Length);
            if (!subscription.IsActive) return;
            Message message;
            try
            {
                message = delivery.Header.DecodeBody(delivery.Frame, 0, delivery.Frame.Length);
            }
            catch (DecodeException exception)
            {
                Interlocked.Increment(ref undecodable);
                Logger.Warning("dropped a message on \"" + delivery.Header.Subject
                               + "\" whose body cannot be decoded: " + exception.Message);
                Report(exception, delivery.Header.Subject, subscription);
                return;
            }
            subscription.CountDelivered();
            try
            {
                subscription.Callback(this, delivery.Header.Subject, delivery.Header.ReplySubject,
                                      message, subscription.Tag);
            }
            catch (Exception exception)
            {
                Logger.Error("subscription callback for \"" + subscription.Subject + "\" threw: " + exception);
            }
        }
    }
}
